"""Runs that survive faults: a killed or interrupted run resumes to the very weights of the
uninterrupted one, a run folder has one writer, last.ckpt is the latest state and best-*
the best epoch, and non-finite numbers stop a run with a one-line error."""

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from neurojoule.cli import main
from neurojoule.train import load_config, train
from neurojoule.train.checkpoints import best_checkpoint

TINY = [
    "task_options={min_length: 20, max_length: 60, n_train: 96, n_val: 16, n_test: 16,"
    " seq_len: 60}",
    "model_options={d_model: 8, n_layers: 1, d_state: 4, bidirectional: true, dropout: 0.1}",
    "optim.batch_size=12",
    "optim.epochs=3",
    "lif_mode=bptt",
]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("NEUROJOULE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _steps(path: Path) -> int:
    return torch.load(path, weights_only=True, map_location="cpu")["global_step"]


def test_last_is_the_latest_state_and_best_the_best_epoch(tmp_path, cache):
    out = tmp_path / "run"
    result = train(load_config("listops-cpu", TINY), out, progress=False)
    last = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["epoch"] == 2 and last["global_step"] == 3 * 8  # 96 samples / 12 per batch
    rows = list(csv.DictReader((out / "log" / "version_0" / "metrics.csv").open()))
    val = [(int(r["epoch"]), float(r["val/acc"])) for r in rows if r.get("val/acc")]
    best_epoch = max(val, key=lambda pair: pair[1])[0]  # the first of equal maxima
    assert best_checkpoint(out / "checkpoints").name == f"best-epoch={best_epoch}.ckpt"
    assert result.tested_checkpoint.name == f"best-epoch={best_epoch}.ckpt"
    assert 0.0 <= result.test_metrics["test/acc"] <= 1.0


# The training command of the resume tests, run as a user runs it, in a process of its own.
def _command(out: Path) -> list[str]:
    argv = [sys.executable, "-m", "neurojoule", "train", "spiking-ssm", "--task", "listops"]
    argv += ["--config", "listops-cpu", "--out", str(out), "--quiet"]
    for item in [*TINY, "checkpoint_every_n_steps=3"]:
        argv += ["--set", item]
    return argv


def _environment(cache: Path) -> dict:
    return {**os.environ, "NEUROJOULE_CACHE": str(cache), "OMP_NUM_THREADS": "2"}


def _wait_for(condition, process, timeout=120.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, "the run ended before the kill point"
        assert time.monotonic() < deadline, "the kill point never came"
        time.sleep(0.005)


def _weights(out: Path) -> dict[str, torch.Tensor]:
    checkpoint = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
    return {**checkpoint["state_dict"], "global_step": torch.tensor(checkpoint["global_step"])}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The final weights of the uninterrupted run, and the data cache it made."""
    folder = tmp_path_factory.mktemp("uninterrupted")
    env = _environment(folder / "cache")
    subprocess.run(_command(folder / "run"), env=env, check=True, capture_output=True)
    return _weights(folder / "run"), env


@pytest.mark.parametrize(
    "kill_point",
    ["early", "mid-epoch", "just after a checkpoint", "ctrl-c"],
)
def test_a_killed_run_resumes_to_the_uninterrupted_weights(kill_point, uninterrupted, tmp_path):
    expected, env = uninterrupted
    out = tmp_path / "killed"
    last = out / "checkpoints" / "last.ckpt"
    process = subprocess.Popen(_command(out), env=env, stderr=subprocess.PIPE, text=True)
    try:
        if kill_point == "early":  # at the first checkpoint, step 3 of 24
            _wait_for(last.is_file, process)
        elif kill_point == "mid-epoch":  # between checkpoints, inside the second epoch
            _wait_for(lambda: last.is_file() and _steps(last) >= 9, process)
            time.sleep(0.05)
        else:  # the moment the end of the first epoch has been written
            _wait_for(lambda: last.is_file() and _steps(last) >= 8, process)
        if kill_point == "early":
            # a second run into a folder in use (by a paused run) is refused with one line
            process.send_signal(signal.SIGSTOP)
            second = subprocess.run(_command(out), env=env, capture_output=True, text=True)
            assert second.returncode == 2 and "in use by another run" in second.stderr
            assert second.stderr.count("\n") == 1
        process.send_signal(signal.SIGINT if kill_point == "ctrl-c" else signal.SIGKILL)
        _, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
    if kill_point == "ctrl-c":
        assert process.returncode == 130 and "interrupted" in stderr
        assert "Traceback" not in stderr
    assert last.is_file() and _steps(last) < 24
    # the killed run's lock does not block --resume
    resumed = subprocess.run([*_command(out), "--resume"], env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    got = _weights(out)
    assert expected.keys() == got.keys()
    different = [name for name in expected if not torch.equal(expected[name], got[name])]
    assert different == []


def test_out_naming_a_file_is_one_line(tmp_path, cache, capsys):
    target = tmp_path / "file"
    target.write_text("x")
    argv = ["train", "spiking-ssm", "--task", "listops", "--config", "listops-cpu"]
    assert main([*argv, "--out", str(target), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "is a file" in err and err.count("\n") == 1


def test_progress_goes_to_stderr_and_results_to_stdout(tmp_path, cache, capfd):
    argv = ["train", "spiking-ssm", "--task", "listops", "--config", "listops-cpu"]
    for item in [*TINY, "optim.epochs=1"]:
        argv += ["--set", item]
    assert main([*argv, "--out", str(tmp_path / "run")]) == 0
    out, err = capfd.readouterr()
    assert "it/s" in err or "s/it" in err  # Lightning's bars
    assert out.count("\n") == 2 and "test/acc" in out  # the final line and the run folder


def test_a_nan_weight_in_a_checkpoint_is_refused_by_name(tmp_path, cache, capsys):
    out = tmp_path / "run"
    train(load_config("listops-cpu", [*TINY, "optim.epochs=1"]), out, progress=False)
    checkpoint = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
    name = "model.decoder.weight"
    checkpoint["state_dict"][name][0, 0] = float("nan")
    torch.save(checkpoint, tmp_path / "nan.ckpt")
    assert main(["eval", str(tmp_path / "nan.ckpt")]) == 2
    err = capsys.readouterr().err
    assert "decoder.weight" in err and "NaN" in err and err.count("\n") == 1


def test_non_finite_inputs_and_losses_stop_training_by_name(cache):
    from neurojoule.train.module import ClassifierModule
    from neurojoule.train.splits import make_splits

    overrides = [*TINY, "task_options={}", "limit_train_samples=8"]
    config = load_config("listops-cpu", overrides, model="s4d", task="fashion-mnist-seq")
    try:
        train_set, _, _, info = make_splits(config)
    except FileNotFoundError:
        pytest.skip("Fashion-MNIST files not installed (Debian dataset-fashion-mnist)")
    module = ClassifierModule(config.to_dict(), info.__dict__)
    module.log = lambda *args, **kwargs: None
    x, y = next(iter(torch.utils.data.DataLoader(train_set, batch_size=4)))
    x[1, 5, 0] = float("nan")
    with pytest.raises(ValueError, match="train batch's input holds 1 non-finite value"):
        module.training_step((x, y), 0)
    x[1, 5, 0] = 0.0
    with torch.no_grad():
        module.model.decoder.weight[0, 0] = float("inf")
    with pytest.raises(ValueError, match="non-finite logits .*weight decoder.weight"):
        module.training_step((x, y), 0)


@pytest.mark.parametrize(
    "defaults, seconds, chosen, rule",
    [
        # on a device with a default, no timing moves the choice (a loaded CPU once measured
        # the SDN faster)
        ({"cpu": "bptt"}, {"bptt": 1.0, "sdn": 0.1}, "bptt", "the default on cpu"),
        ({"cpu": "sdn"}, {"bptt": 0.1, "sdn": 1.0}, "sdn", "the default on cpu"),
        # elsewhere the SDN needs a clear margin over the exact LIF
        ({}, {"bptt": 1.0, "sdn": 0.8}, "bptt", "sdn not 1.5x faster than bptt"),
        ({}, {"bptt": 1.0, "sdn": 0.5}, "sdn", "sdn 2.0x faster than bptt"),
        ({}, {"bptt": 1.0}, "bptt", "sdn not 1.5x faster"),  # no SDN for this decay
    ],
)
def test_auto_takes_the_device_default_else_a_clearly_faster_sdn(
    defaults, seconds, chosen, rule, monkeypatch
):
    from neurojoule.layers import ssm_neurons
    from neurojoule.models import build_model
    from neurojoule.train import lif_mode

    monkeypatch.setattr(lif_mode, "DEFAULT_LIF_MODE", defaults)
    monkeypatch.setattr(lif_mode, "_step_seconds", lambda *args: seconds)
    model = build_model("spiking-ssm", d_model=4, n_layers=1, d_state=4, in_channels=1)
    x, y = torch.randn(2, 16, 1), torch.tensor([0, 1])
    record = lif_mode.choose_lif_mode(model, (x, y))
    assert record["chosen"] == chosen and rule in record["rule"]
    assert {neuron.mode for neuron in ssm_neurons(model).values()} == {chosen}


def test_a_spiking_ssm_mode_for_a_model_without_ssm_neurons_is_refused(cache, tmp_path):
    with pytest.raises(ValueError, match="'sdn' needs spiking SSM layers"):
        train(load_config("fashion-mnist", ["lif_mode=sdn"], model="spiking-mlp"), tmp_path)


def test_a_quiet_run_and_its_resume_print_nothing_on_stderr(tmp_path, cache, capfd):
    argv = ["train", "spiking-ssm", "--task", "listops", "--config", "listops-cpu", "--quiet"]
    for item in [*TINY, "optim.epochs=1"]:
        argv += ["--set", item]
    argv += ["--out", str(tmp_path / "run")]
    assert main(argv) == 0
    assert main([*argv, "--set", "optim.epochs=2", "--resume"]) == 0
    out, err = capfd.readouterr()
    assert err == "" and out.count("\n") == 4
