"""A user's mistake ends in one line on stderr and exit status 2, never a traceback; Ctrl-C
in 130 with what was saved; a closed stdout pipe quietly."""

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from neurojoule.cli import main

TRAIN = ["train", "spiking-ssm", "--task", "listops", "--quiet"]


def _one_error_line(capsys, command: str) -> str:
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"neurojoule {command}: error: ") and err.count("\n") == 1, err
    assert err.endswith("\n") and "Traceback" not in err
    return err


@pytest.mark.parametrize(
    "item, named",
    [
        ("optim.lr=abc", "optim.lr must be a number, got 'abc'"),
        ("model_options=null", "model_options must be a mapping"),
        ("task_options=[1, 2]", "task_options must be a mapping"),
        ("optim.batch_size=2.5", "optim.batch_size must be an integer, got 2.5"),
        ("optim.epochs=true", "optim.epochs must be an integer, got True"),
        ("seed=1e3", "seed must be an integer"),
        ("optim.lr=.nan", "optim.lr must be a finite number, got nan"),
        ("spike_rate_penalty=-.inf", "spike_rate_penalty must be a finite number"),
        ("optim.weight_decay=1.0e+999", "optim.weight_decay must be a finite number"),
        ("model=[spiking-ssm]", "model must be a string"),
        ("task_root=[a, b]", "task_root must be a string or null"),
        ("optim=3", "optim must be a section"),
        ("optim.lr.x=1", "optim.lr is not a section"),
        ("lif_mode=fast", "lif_mode must be one of"),
        ("accelerator=abacus", "accelerator must be one of"),
        ("no_such_key=1", "unknown config keys ['no_such_key']"),
        ("optim.momentum=0.9", "unknown optim keys ['momentum']"),
        ("optim.lr=[", "the value is not valid YAML"),
        ("model_options={d_model: .inf}", "model_options.d_model must be a finite number"),
        ("model_options={1: 2}", "model_options must have string keys"),
        ("=3", "must look like key=value"),
        ("optim..lr=3", "must look like key=value"),
    ],
)
def test_bad_set_values_are_one_line(item, named, fake_train, capsys):
    assert main([*TRAIN, "--set", item]) == 2
    assert named in _one_error_line(capsys, "train")
    assert fake_train == []


@pytest.mark.parametrize(
    "text, named",
    [
        ("- task: listops\n- model: s4d\n", "must hold a mapping of settings, got [{"),
        ("optim:\n  lr: fast\n", "optim.lr must be a number, got 'fast'"),
        ("", "holds no settings"),
        ("# only a comment\n", "holds no settings"),
        ("{}\n", "holds no settings"),
        ("task: listops\n  model: [unclosed\n", "is not valid YAML"),
        ("task: listops\nepochs: 3\n", "unknown config keys ['epochs']"),
        ("task: listops\nmodel_options:\n", "model_options must be a mapping"),
        ("just a string\n", "must hold a mapping of settings, got 'just a string'"),
        (
            "limit_train_samples: 2020-01-01\n",
            "limit_train_samples must be an integer or null, got datetime.date",
        ),
        ("[[[[[[[[[[" * 200, "is nested too deeply to be a config"),
    ],
)
def test_bad_config_files_are_one_line(text, named, tmp_path, fake_train, capsys):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    assert main([*TRAIN, "--config", str(path)]) == 2
    assert named in _one_error_line(capsys, "train")
    assert fake_train == []


def test_a_config_file_that_is_not_utf8_is_one_line(tmp_path, fake_train, capsys):
    path = tmp_path / "config.yaml"
    path.write_bytes(b"task: listops\nmodel: \xff\xfe\n")
    assert main([*TRAIN, "--config", str(path)]) == 2
    assert "is not UTF-8 text" in _one_error_line(capsys, "train")


def test_a_missing_config_names_the_known_ones(fake_train, capsys):
    assert main([*TRAIN, "--config", "no-such-config"]) == 2
    assert "no config 'no-such-config'" in _one_error_line(capsys, "train")


def test_out_naming_a_file_is_one_line(tmp_path, cache, capsys):
    """The real training call: the run folder is checked before any data is made."""
    target = tmp_path / "file"
    target.write_text("x")
    assert main([*TRAIN, "--config", "listops-cpu", "--out", str(target)]) == 2
    assert f"--out {target} is a file" in _one_error_line(capsys, "train")
    assert not (cache / "listops").exists()


def test_library_messages_over_several_lines_are_printed_on_one(monkeypatch, capsys):
    import neurojoule.train.demo as demo

    def broken(task="listops", seed=0, epochs=None, progress=True, energy_table="45nm"):
        raise ValueError("expected something,\n  got\tsomething else\n")

    monkeypatch.setattr(demo, "run_demo", broken)
    assert main(["demo"]) == 2
    assert capsys.readouterr().err == (
        "neurojoule demo: error: expected something, got something else\n"
    )


def test_os_errors_are_one_line(fake_train, monkeypatch, capsys):
    import neurojoule.train

    def full_disk(config, out, **_):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(neurojoule.train, "train", full_disk)
    assert main(TRAIN) == 2
    assert "No space left on device" in _one_error_line(capsys, "train")


def test_ctrl_c_in_training_prints_what_was_saved_on_one_line(monkeypatch, capsys):
    import neurojoule.train

    saved = Path("runs/x/checkpoints/last.ckpt")

    def interrupted(config, out, **_):
        raise KeyboardInterrupt(f"{saved} holds the last step; continue with --resume")

    monkeypatch.setattr(neurojoule.train, "train", interrupted)
    assert main(TRAIN) == 130
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        f"neurojoule train: interrupted: {saved} holds the last step; continue with --resume\n"
    )


def test_ctrl_c_in_a_nested_command_names_it(monkeypatch, capsys):
    import functools

    import neurojoule.bench.neuron as bench

    @functools.wraps(bench.run)  # the same signature: the parser reads its defaults
    def interrupted(**_):
        raise KeyboardInterrupt

    monkeypatch.setattr(bench, "run", interrupted)
    assert main(["bench", "neuron"]) == 130
    assert capsys.readouterr().err == "neurojoule bench neuron: interrupted\n"


def _neurojoule(*argv: str) -> list[str]:
    return [sys.executable, "-m", "neurojoule", *argv]


def test_sigint_to_a_running_command_exits_130_in_one_line(cache):
    """A real Ctrl-C (SIGINT) while `sdn train` runs: its progress bar shows an epoch done."""
    argv = _neurojoule("sdn", "train", "--decay", "0.5", "--sequences", "2000", "--length", "256")
    env = {**os.environ, "NEUROJOULE_CACHE": str(cache)}
    # a shell that starts a job in the background (`cmd &`) makes it ignore SIGINT, and Python
    # keeps an ignored SIGINT ignored: give the child the default disposition back
    process = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        # wait for the bar to show a finished epoch: training runs (imports and the first
        # compilation of the LIF kernel are over; on a loaded machine they take seconds)
        shown = b""
        while not re.search(rb"\| +[1-9]\d*/100", shown) and process.poll() is None:
            shown += process.stderr.read(1)
        assert process.poll() is None, "sdn train ended before it could be interrupted"
        assert shown.startswith(b"\rSDN decay="), shown
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130
    err = shown + err
    lines = err.decode().replace("\r", "\n").strip().splitlines()
    assert lines[-1] == "neurojoule sdn train: interrupted"
    assert b"Traceback" not in err and out == b""


@pytest.mark.parametrize(
    "argv",
    [("models",), ("sdn", "eval", "--decay", "0.25", "--json", "--sequences", "4")],
)
def test_a_closed_stdout_pipe_ends_quietly(argv, cache):
    """The reader went away before a byte was written (as `| head -1` does, sooner): no
    traceback, no message about the failed flush at exit."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run(
            _neurojoule(*argv), stdout=write_end, stderr=subprocess.PIPE, timeout=300
        )
    finally:
        os.close(write_end)
    assert done.returncode == 1
    assert done.stderr == b""


def test_head_reads_the_start_and_nothing_breaks(cache):
    command = " ".join(_neurojoule("sdn", "eval", "--decay", "0.25", "--json", "--sequences", "4"))
    done = subprocess.run(
        f"{command} | head -c 10", shell=True, capture_output=True, text=True, timeout=300
    )
    assert done.stdout == '{\n  "decay'
    assert done.stderr == ""
