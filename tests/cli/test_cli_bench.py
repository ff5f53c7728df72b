"""neurojoule bench: the rows report what was measured, and the spikes that were timed are
the LIF's, checked against a plain loop written here."""

import json
from pathlib import Path

import pytest
import torch

from neurojoule.cli import main


def reference_lif(x: torch.Tensor, integrate) -> torch.Tensor:
    """Spikes of a LIF over x [T, channels] from rest: h = integrate(u, x_t), a spike where
    h >= 1, hard reset to 0."""
    u = torch.zeros_like(x[0])
    spikes = []
    for x_t in x:
        h = integrate(u, x_t)
        s = (h >= 1.0).to(x.dtype)
        u = h * (1.0 - s)
        spikes.append(s)
    return torch.stack(spikes)


INTEGRATE = {
    "spikingjelly": lambda u, x: u + (x - u) / 2.0,  # input decay, time constant 2
    "snntorch": lambda u, x: 0.125 * u + x,  # multiplicative decay factor 0.125
}


@pytest.fixture
def timed(monkeypatch):
    """Every call the benchmark times: (who, L, input, seconds, spikes)."""
    import neurojoule.bench.neuron as bench

    calls = []
    real_time = bench.time_forward_backward

    def tagged(who, fn):
        if fn is None:
            return None

        def run(x):
            return fn(x)

        run.who = who
        return run

    def time_and_record(fn, x, weight, repeats):
        seconds, spikes = real_time(fn, x, weight, repeats)
        calls.append((fn.who, x.shape[0], x.clone(), seconds, spikes.clone()))
        return seconds, spikes

    real_ours, real_sj, real_snn = bench.ours, bench.spikingjelly_lif, bench.snntorch_leaky
    peer_of = {id(bench.SJ_DYNAMICS): "spikingjelly", id(bench.SNNTORCH_DYNAMICS): "snntorch"}
    monkeypatch.setattr(bench, "time_forward_backward", time_and_record)
    monkeypatch.setattr(
        bench, "ours", lambda dyn, leak: tagged(f"ours/{peer_of[id(dyn)]}", real_ours(dyn, leak))
    )
    monkeypatch.setattr(bench, "spikingjelly_lif", lambda: tagged("spikingjelly", real_sj()))
    monkeypatch.setattr(bench, "snntorch_leaky", lambda: tagged("snntorch", real_snn()))
    return calls


def test_bench_neuron_rows_are_the_measured_lif(timed, capsys):
    argv = ["bench", "neuron", "--lengths", "64", "200", "--channels", "16", "--repeats", "1"]
    assert main([*argv, "--snntorch-max-length", "100", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [row["L"] for row in rows] == [64, 200]
    calls = {(who, length): rest for who, length, *rest in timed}
    peers_installed = {who for who, *_ in timed if not who.startswith("ours")}
    for row in rows:
        length = row["L"]
        for peer, integrate in INTEGRATE.items():
            x, ours_s, ours_spikes = calls[f"ours/{peer}", length]
            expected = reference_lif(x, integrate)
            assert torch.equal(ours_spikes, expected)
            assert 0 < expected.mean() < 0.5  # spikes, and silence, to compare
            ours_key = "ours_s" if peer == "spikingjelly" else "ours_snntorch_config_s"
            assert row[ours_key] == ours_s
            measured = (peer, length) in calls
            assert measured == (peer in peers_installed and (peer != "snntorch" or length <= 100))
            if not measured:
                assert row[f"{peer}_s"] is None and row[f"speedup_vs_{peer}"] is None
                continue
            peer_x, peer_s, peer_spikes = calls[peer, length]
            assert torch.equal(peer_x, x)  # the same input, side by side
            assert row[f"{peer}_s"] == peer_s
            assert row[f"speedup_vs_{peer}"] == pytest.approx(peer_s / ours_s)
            assert row[f"{peer}_spikes_equal"] is torch.equal(peer_spikes, expected)
        assert row["spikes_equal"] is (True if peers_installed else None)


def _busy_loops(wait: float = 0.0) -> list[int]:
    """This process's children that run a Python busy loop (Linux /proc), waiting up to `wait`
    seconds for one: a child just forked shows its parent's command line until it execs."""
    import os
    import time

    pid, deadline = os.getpid(), time.monotonic() + wait
    while True:
        found = []
        for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
            try:
                if b"while True: pass" in Path(f"/proc/{child}/cmdline").read_bytes():
                    found.append(int(child))
            except FileNotFoundError:  # ended meanwhile
                pass
        if found or time.monotonic() >= deadline:
            return found
        time.sleep(0.01)


def test_bench_neuron_busy_times_beside_a_busy_loop_and_stops_it(monkeypatch, capsys):
    import neurojoule.bench.neuron as bench

    rivals = []
    real_time = bench.time_forward_backward

    def time_and_look(fn, x, weight, repeats):
        rivals.append(_busy_loops(wait=5.0))
        return real_time(fn, x, weight, repeats)

    monkeypatch.setattr(bench, "time_forward_backward", time_and_look)
    argv = ["bench", "neuron", "--lengths", "32", "--channels", "8", "--repeats", "1"]
    assert main([*argv, "--busy", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["busy"] is True and rows[0]["ours_backend"] == "numba"
    assert rivals and all(len(found) == 1 for found in rivals)  # one rival, at every timing
    assert _busy_loops() == []  # stopped and reaped


def test_bad_energy_table_is_rejected_before_training(capsys):
    assert main(["demo", "--energy-table", "mac=4.6"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("neurojoule demo: error:") and "mac=" in err and err.count("\n") == 1


def test_cuda_is_refused_where_there_is_none(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit):
        main(["bench", "sdn", "--device", "cuda"])
    assert "CUDA is not available" in capsys.readouterr().err
