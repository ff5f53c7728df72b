from spikeforge.train.demo import run_demo


def test_short_demo_learns_digits_and_reports_energy():
    result = run_demo(seed=0, epochs=3, progress=False)
    assert result.accuracy > 0.8  # chance is 0.1
    report = result.energy.to_dict()
    assert report["samples"] == 360
    assert result.energy.mfi().holds  # only the first Linear sees pixels
    rates = [row.firing_rate for row in result.energy.neurons]
    assert len(rates) == 2 and all(0 < rate < 1 for rate in rates)
