"""Data-parallel training on 2 CPU processes (Lightning's DDP over gloo), through the CLI as a
user runs it: launched by Lightning itself (--devices 2) and by torchrun.

The reference is the same run in one process with twice the batch: the two ranks' shares of a
step are that run's batch, so with a model without batch statistics (layer norm, no dropout)
both runs compute the same gradients up to the order of float sums."""

import csv
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from neurojoule.train import splits

TINY = [
    "task_options={min_length: 20, max_length: 60, n_train: 64, n_val: 16, n_test: 16,"
    " seq_len: 60}",
    "model_options={d_model: 8, n_layers: 1, d_state: 4, bidirectional: true, norm: layer,"
    " dropout: 0.0}",
    "optim.epochs=10",
    "accelerator=cpu",
    "lif_mode=bptt",
    "checkpoint_every_n_steps=2",
]
PER_RANK_BATCH = 8
# 40 steps of float32 training; the two runs sum the same numbers in another order
TOLERANCE = 1e-5


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _environment(cache: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "LOCAL_RANK", "NODE_RANK")}
    env.update(
        NEUROJOULE_CACHE=str(cache),
        OMP_NUM_THREADS="1",
        NUMBA_NUM_THREADS="1",
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(_free_port()),
    )
    return env


def _train_argv(out: Path, batch: int, *extra: str) -> list[str]:
    argv = ["train", "spiking-ssm", "--task", "listops", "--config", "listops-cpu"]
    for item in [*TINY, f"optim.batch_size={batch}"]:
        argv += ["--set", item]
    return [*argv, "--out", str(out), "--quiet", *extra]


def _neurojoule(argv, cache, **popen):
    return subprocess.Popen(
        [sys.executable, "-m", "neurojoule", *argv],
        env=_environment(cache),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **popen,
    )


def _finish(process, timeout=240):
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The one-process reference (batch 16) and the same run on 2 processes (batch 8 each)."""
    root = tmp_path_factory.mktemp("ddp")
    cache = root / "cache"
    one = _neurojoule(_train_argv(root / "one", 2 * PER_RANK_BATCH), cache)
    assert _finish(one)[0] == 0
    two = _neurojoule(_train_argv(root / "two", PER_RANK_BATCH, "--devices", "2"), cache)
    status, out, err = _finish(two)
    assert status == 0, err
    return root, out


def _weights(run: Path) -> dict:
    return torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)


def _assert_same_weights(a: dict, b: dict, tolerance: float) -> None:
    assert a["global_step"] == b["global_step"]
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for name, value in a["state_dict"].items():
        assert torch.allclose(value, b["state_dict"][name], rtol=0, atol=tolerance), name


def _logged(run: Path) -> list[dict]:
    (version,) = (run / "log").iterdir()  # one logger: rank 0's
    rows = list(csv.DictReader((version / "metrics.csv").open()))
    columns = ("train/loss_epoch", "val/loss", "val/acc", "train/spike_rate/mean", "test/loss")
    return [
        {column: float(row[column]) for column in columns if row.get(column)}
        for row in rows
        if any(row.get(column) for column in columns)
    ]


def test_two_processes_learn_what_one_learns_with_twice_the_batch(runs):
    root, stdout = runs
    one, two = _logged(root / "one"), _logged(root / "two")
    assert len(one) == len(two) > 10
    for a, b in zip(one, two, strict=True):
        assert a.keys() == b.keys()
        for column in a:  # losses, accuracies and spike rates: every rank's samples counted
            assert a[column] == pytest.approx(b[column], abs=TOLERANCE), column
    _assert_same_weights(_weights(root / "one"), _weights(root / "two"), TOLERANCE)
    # the same checkpoint format, written once; one result printed
    reference = _weights(root / "one")
    assert _weights(root / "two").keys() == reference.keys()
    assert sorted(p.name for p in (root / "two").iterdir()) == sorted(
        p.name for p in (root / "one").iterdir()
    )
    assert stdout.count("run written to") == 1


def test_a_two_process_run_stopped_with_ctrl_c_resumes_to_the_same_weights(runs):
    root, _ = runs
    out = root / "interrupted"
    argv = _train_argv(out, PER_RANK_BATCH, "--devices", "2")
    process = _neurojoule(argv, root / "cache", start_new_session=True)
    deadline = time.monotonic() + 120
    while not (out / "checkpoints" / "last.ckpt").is_file():
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: every rank
    status, _, err = _finish(process)
    assert status == 130, err
    stopped_at = _weights(out)["global_step"]
    assert 0 < stopped_at < _weights(root / "two")["global_step"]
    resumed = _neurojoule([*argv, "--resume"], root / "cache")
    assert _finish(resumed)[0] == 0
    _assert_same_weights(_weights(out), _weights(root / "two"), 0.0)


def test_torchrun_launches_the_same_run(runs):
    root, _ = runs
    out = root / "torchrun"
    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.is_file():
        pytest.skip("torchrun is not installed beside this Python")
    env = _environment(root / "cache")
    command = [str(torchrun), "--nproc-per-node", "2", "--master-port", env["MASTER_PORT"]]
    command += ["-m", "neurojoule", *_train_argv(out, PER_RANK_BATCH, "--devices", "2")]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("run written to") == 1
    _assert_same_weights(_weights(out), _weights(root / "two"), 0.0)


class _FakeGroup:
    """torch.distributed as rank `rank` of `world` processes sees it."""

    def __init__(self, rank: int, world: int):
        self.rank, self.world = rank, world

    def is_available(self):
        return True

    def is_initialized(self):
        return True

    def get_rank(self):
        return self.rank

    def get_world_size(self):
        return self.world


@pytest.mark.parametrize("size", [64, 61])
def test_the_ranks_shares_of_a_step_make_the_one_process_batch(size, monkeypatch):
    batch, ranks = 4, 3
    whole = list(splits.EpochOrder(size, seed=5))
    shares = []
    for rank in range(ranks):
        monkeypatch.setattr(splits, "dist", _FakeGroup(rank, ranks))
        order = splits.EpochOrder(size, seed=5, replicas=ranks)
        shares.append(list(order))
        assert len(order) == len(shares[-1]) == -(-size // ranks)
    padded = whole + whole[: len(shares[0]) * ranks - size]
    for step in range(len(shares[0]) // batch):
        together = sorted(i for share in shares for i in share[step * batch : (step + 1) * batch])
        assert together == sorted(padded[step * batch * ranks : (step + 1) * batch * ranks])


def test_a_launch_of_another_size_than_configured_is_one_line(monkeypatch):
    monkeypatch.setattr(splits, "dist", _FakeGroup(0, 4))
    with pytest.raises(ValueError, match="split for 2 processes, but 4 run"):
        list(splits.EpochOrder(10, seed=0, replicas=2))
