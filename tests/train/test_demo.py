from neurojoule.train.demo import run_demo


def test_short_demo_learns_digits_and_reports_energy():
    from sklearn.linear_model import LogisticRegression

    from neurojoule.data import load_digits_split

    result = run_demo("digits", seed=0, epochs=3, progress=False)
    # the reference: a linear model on the same split (about 0.97); 3 of the demo's 60 epochs
    # get the spiking network within 12 points of it
    train_set, test_set = load_digits_split(seed=0)
    linear = LogisticRegression(max_iter=2000).fit(*(t.numpy() for t in train_set.tensors))
    assert result.accuracy >= linear.score(*(t.numpy() for t in test_set.tensors)) - 0.12
    report = result.energy.to_dict()
    assert report["samples"] == 360
    assert result.energy.mfi().holds  # only the first Linear sees pixels
    rates = [row.firing_rate for row in result.energy.neurons]
    assert len(rates) == 2 and all(0 < rate < 1 for rate in rates)


def test_listops_demo_trains_spiking_ssm_and_reports(tmp_path, monkeypatch, capsys):
    import neurojoule.train.config as config_module
    from neurojoule.cli import main

    monkeypatch.setenv("NEUROJOULE_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    real_load = config_module.load_config
    tiny = [
        "task_options={min_length: 20, max_length: 60, n_train: 64, n_val: 16, n_test: 16,"
        " seq_len: 60}",
        "model_options={d_model: 8, n_layers: 1, d_state: 4}",
        "optim.batch_size=16",
    ]
    monkeypatch.setattr(
        config_module,
        "load_config",
        lambda name, overrides, **kw: real_load(name, tiny + overrides, **kw),
    )
    assert main(["demo", "--epochs", "1"]) == 0
    out = capsys.readouterr().out
    assert "spiking-ssm on listops: test accuracy" in out
    assert "spiking layers trained in bptt mode (the default on cpu" in out
    assert "checkpoint: best-epoch=0.ckpt (best: epoch 1" in out
    assert "SSMNeuron" in out and "ANN/SNN" in out
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
