"""`neurojoule evolve weights` as a user runs it: killed with SIGKILL and resumed it ends with
the weights and history of a run never stopped; its run folder is read by `neurojoule eval`;
bad settings and a resume with other settings are one-line errors."""

import json
import signal
import socket
import subprocess
import sys
import time

import pytest
import torch

from neurojoule.cli import main

TINY = [
    "evolve",
    "weights",
    "dense-snn",
    "--task",
    "digits",
    "--set",
    "model_options.hidden=[8]",
    "--set",
    "model_options.steps=2",
    "--set",
    "checkpoint_every_n_steps=5",
    "--population",
    "10",
    "--eval-every",
    "10",
    "--quiet",
]


def _command(out, generations):
    budget = ["--generations", str(generations), "--out", str(out)]
    return [sys.executable, "-m", "neurojoule", *TINY, *budget]


def _final(out) -> tuple[dict, list]:
    state = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
    rows = state["evolution"]["history"]
    history = [{k: v for k, v in row.items() if k != "seconds"} for row in rows]
    return state["state_dict"], history


def test_a_killed_evolution_resumes_to_the_uninterrupted_result(tmp_path):
    whole = tmp_path / "whole"
    subprocess.run(_command(whole, 150), check=True, capture_output=True, env=_env())
    killed = tmp_path / "killed"
    process = subprocess.Popen(_command(killed, 150), stderr=subprocess.PIPE, env=_env())
    last = killed / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 120
    step = 0
    while step < 20 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
        if last.is_file():
            step = torch.load(last, weights_only=True)["global_step"]
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert 20 <= step < 150, f"the run was not killed midway (at generation {step})"
    done = subprocess.run(
        [*_command(killed, 150), "--resume"], capture_output=True, text=True, env=_env()
    )
    assert done.returncode == 0, done.stderr
    weights, history = _final(killed)
    expected_weights, expected_history = _final(whole)
    assert history == expected_history
    assert weights.keys() == expected_weights.keys()
    assert all(torch.equal(weights[k], expected_weights[k]) for k in weights)


def test_two_processes_share_the_population_and_evolve_the_same_weights(tmp_path):
    one = tmp_path / "one"
    subprocess.run(_command(one, 20), check=True, capture_output=True, env=_env())
    two = tmp_path / "two"
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2"]
    launcher += ["--master-addr", "127.0.0.1", "--master-port", str(_free_port())]
    command = [*launcher, "-m", "neurojoule", *_command(two, 20)[3:], "--json"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=_env())
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout)["ranks"] == 2  # rank 0 alone printed its result
    weights, history = _final(two)
    expected_weights, expected_history = _final(one)
    assert history == expected_history
    assert all(torch.equal(weights[k], expected_weights[k]) for k in expected_weights)


def test_the_run_folder_is_a_checkpoint_eval_reads(tmp_path, capsys):
    out = tmp_path / "run"
    assert main([*TINY, "--generations", "20", "--out", str(out), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["generations"] == 20
    assert result["best"]["generation"] in (10, 20)
    assert main(["eval", str(out), "--json"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["accuracy"] == pytest.approx(result["test"]["accuracy"])
    assert "best-generation=" in evaluated["evaluated"]


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--population", "9"], "even number"),
        (["--sigma", "nan"], "sigma"),
        (["--spike-cap", "-3"], "spike-cap"),
        (["--generations", "0"], "generations"),
    ],
)
def test_bad_settings_are_one_line_errors(tmp_path, capsys, extra, message):
    code = _exit_code([*TINY, "--out", str(tmp_path / "run"), *extra])
    err = capsys.readouterr().err
    assert code != 0
    assert message in err and len(err.strip().splitlines()) == 1


def test_resuming_with_other_settings_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    assert main([*TINY, "--generations", "5", "--out", str(out)]) == 0
    capsys.readouterr()
    code = main([*TINY, "--generations", "5", "--sigma", "0.2", "--out", str(out), "--resume"])
    err = capsys.readouterr().err
    assert code != 0 and "other settings" in err and len(err.strip().splitlines()) == 1


def _exit_code(argv) -> int:
    """main's exit status, whether it returns it or argparse exits with it."""
    try:
        return main(argv)
    except SystemExit as stop:
        return stop.code


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _env():
    import os

    return {**os.environ, "OMP_NUM_THREADS": "1"}
