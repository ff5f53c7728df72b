"""neurojoule search on a tiny trained supernet: the result is the library's, its validation
data are the run's validation split (never the test split), the search resumes, and torchrun
with two processes prints the front of one."""

import contextlib
import io
import json
import os
import socket
import subprocess
import sys

import pytest
import torch
import yaml
from search_fixtures import tiny_spikformer_space

from neurojoule.cli import main
from neurojoule.data.fashion_mnist import find_fashion_mnist
from neurojoule.search.command import search_splits, validation_batches
from neurojoule.search.supernet import load_supernet, train_supernet
from neurojoule.train.config import load_config
from neurojoule.train.splits import make_splits

SPACE = tiny_spikformer_space({"real": [0.6, 1.2]}, [1.25, 2.0])
SETTINGS = [
    "limit_train_samples=32",
    "limit_eval_samples=24",
    "optim.batch_size=8",
    "optim.epochs=1",
    "lif_mode=bptt",
]
SEARCH = ["--algorithm", "nsga2", "--population", "2", "--generations", "2", "--seed", "3"]
SEARCH += ["--val-limit", "16", "--calibration-batches", "1", "--batch-size", "8", "--quiet"]


@pytest.fixture(scope="module")
def supernet(tmp_path_factory):
    try:
        find_fashion_mnist("train")
    except FileNotFoundError:
        pytest.skip("Fashion-MNIST files not installed (Debian dataset-fashion-mnist)")
    root = tmp_path_factory.mktemp("supernet")
    space = root / "tiny.yaml"
    space.write_text(yaml.safe_dump(SPACE))
    config = load_config("fashion-mnist-supernet", SETTINGS, space=str(space))
    torch.manual_seed(0)
    train_supernet(config, root / "run", progress=False)
    return root / "run"


def test_the_search_reads_the_validation_split_only(supernet):
    _, _, config, _ = load_supernet(supernet)
    _, val = search_splits(config, 16)
    _, whole_val, test, _ = make_splits(config)
    batches = validation_batches(val, 8)
    images = torch.cat([x for x, _ in batches])
    assert len(images) == 16
    val_images = torch.stack([whole_val[i][0] for i in range(len(whole_val))])
    test_images = torch.stack([test[i][0] for i in range(len(test))])
    for image in images:  # each one of the validation split's, none of the test split's
        assert (val_images == image).flatten(1).all(1).any()
        assert not (test_images == image).flatten(1).all(1).any()


@pytest.fixture(scope="module")
def searched(supernet, tmp_path_factory):
    """One search of the supernet by the command: its folder, its JSON output."""
    root = tmp_path_factory.mktemp("search")
    argv = ["search", "--supernet", str(supernet), "--out", str(root / "one"), *SEARCH]
    capture = io.StringIO()
    with contextlib.redirect_stdout(capture):
        assert main([*argv, "--json", "--plot", str(root / "front.png")]) == 0
    return root, json.loads(capture.getvalue())


def test_search_prints_the_front_and_resumes(supernet, searched, capsys):
    root, result = searched
    out = root / "one"
    assert result == json.loads((out / "front.json").read_text())
    assert (root / "front.png").stat().st_size > 1000
    assert result["evaluated"] == 4 and result["validation"]["samples"] == 16
    assert result["front"] and all(0 <= e["val_accuracy"] <= 1 for e in result["front"])
    argv = ["search", "--supernet", str(supernet), "--out", str(out), *SEARCH]
    assert main(argv) == 2  # the folder holds a search
    assert "already holds a search" in capsys.readouterr().err
    assert main([*argv, "--resume"]) == 0
    table = capsys.readouterr().out
    assert table.startswith("nsga2 on a space of spikformer: 2 generations, 4 subnets")
    assert main([*argv, "--resume", "--generations", "3"]) == 2
    assert "other settings" in capsys.readouterr().err


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_torchrun_with_two_processes_gives_the_front_of_one(supernet, searched):
    root, one = searched
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2"]
    command += ["--master-addr", "127.0.0.1", "--master-port", str(_free_port())]
    command += ["-m", "neurojoule", "search", "--supernet", str(supernet), *SEARCH]
    command += ["--out", str(root / "two"), "--json"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    two = json.loads(done.stdout)  # printed once, by rank 0
    assert two == json.loads((root / "two" / "front.json").read_text())
    for key in ("front", "best", "largest", "points", "fitness", "validation", "context"):
        assert two[key] == one[key], key


@pytest.mark.parametrize(
    "argv, message",
    [
        (["search"], "--supernet"),
        (["search", "--supernet", "x", "--algorithm", "cma"], "invalid choice"),
        (["search", "--supernet", "x", "--weights", "speed=1"], "unknown weights"),
        (["search", "--supernet", "x", "--objectives", "error,size"], "objectives must be"),
        (["search", "--supernet", "no-such-run", "--out", "x"], "no-such-run"),
        (["search", "--space", "ssm-listops-cpu"], "--space needs --task"),
        (["search", "--supernet", "x", "--train-steps", "5"], "--train-steps go with --space"),
        (["search", "--space", "ssm-listops-cpu", "--task", "listops", "--device", "cpu"], "go"),
        (["search", "--space", "nope", "--task", "listops"], "no space 'nope'"),
        (["search", "--space", "a", "--supernet", "b"], "not allowed with argument"),
    ],
)
def test_a_wrong_search_argument_is_one_line(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    try:
        status = main(argv)
    except SystemExit as exit_info:
        status = exit_info.code
    assert status == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and "Traceback" not in err
