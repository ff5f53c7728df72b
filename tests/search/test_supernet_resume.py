"""A supernet run killed with SIGKILL and resumed ends with the weights of the uninterrupted
run, bit for bit, under both sampling rules: the generator that draws the subnets continues
from the state its checkpoint holds (a resume without that state ends elsewhere)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from search_fixtures import kill_when, tiny_spikformer_space

from neurojoule.data.fashion_mnist import find_fashion_mnist
from neurojoule.search.supernet import SAMPLER_STATE

SPACE = tiny_spikformer_space([0.8, 1.0], [2.0, 10.0])
# 32 images in batches of 8: 4 steps an epoch, 8 in all; last.ckpt every 2 steps
SETTINGS = [
    "limit_train_samples=32",
    "limit_eval_samples=8",
    "optim.batch_size=8",
    "optim.epochs=2",
    "checkpoint_every_n_steps=2",
    "lif_mode=bptt",
]
TOTAL_STEPS = 8


@pytest.fixture(scope="module")
def space_file(tmp_path_factory):
    try:
        find_fashion_mnist("train")
    except FileNotFoundError:
        pytest.skip("Fashion-MNIST files not installed (Debian dataset-fashion-mnist)")
    path = tmp_path_factory.mktemp("space") / "tiny.yaml"
    path.write_text(yaml.safe_dump(SPACE))
    return path


def _command(space: Path, out: Path, sampling: str) -> list[str]:
    argv = [sys.executable, "-m", "neurojoule", "supernet", "train", "--space", str(space)]
    argv += ["--task", "fashion-mnist", "--sampling", sampling, "--out", str(out), "--quiet"]
    for item in SETTINGS:
        argv += ["--set", item]
    return argv


def _environment(cache: Path) -> dict:
    return {**os.environ, "NEUROJOULE_CACHE": str(cache), "OMP_NUM_THREADS": "2"}


def _last(out: Path) -> dict:
    return torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)


def _weights(out: Path) -> dict[str, torch.Tensor]:
    checkpoint = _last(out)
    return {**checkpoint["state_dict"], "global_step": torch.tensor(checkpoint["global_step"])}


def _different(expected: dict, got: dict) -> list[str]:
    assert expected.keys() == got.keys()
    return [name for name in expected if not torch.equal(expected[name], got[name])]


@pytest.fixture(scope="module", params=["uniform", "sandwich"])
def uninterrupted(request, space_file, tmp_path_factory):
    folder = tmp_path_factory.mktemp(f"uninterrupted-{request.param}")
    env = _environment(folder / "cache")
    run = folder / "run"
    subprocess.run(_command(space_file, run, request.param), env=env, check=True)
    return request.param, _weights(run), env


def test_a_killed_supernet_run_resumes_to_the_uninterrupted_weights(
    uninterrupted, space_file, tmp_path
):
    sampling, expected, env = uninterrupted
    out = tmp_path / "killed"
    last = out / "checkpoints" / "last.ckpt"
    command = _command(space_file, out, sampling)
    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    try:
        # between checkpoints, in the first epoch: step 2 is saved, 3 may be under way
        kill_when(process, lambda: last.is_file() and _last(out)["global_step"] >= 2)
        process.communicate(timeout=120)
    finally:
        process.kill()
    assert _last(out)["global_step"] < TOTAL_STEPS
    assert SAMPLER_STATE in _last(out)
    if sampling == "uniform":  # the same resume without the sampler's state: other subnets
        stateless = tmp_path / "stateless"
        shutil.copytree(out, stateless)
        checkpoint = _last(stateless)
        del checkpoint[SAMPLER_STATE]
        torch.save(checkpoint, stateless / "checkpoints" / "last.ckpt")
        subprocess.run(
            [*_command(space_file, stateless, sampling), "--resume"], env=env, check=True
        )
        assert _different(expected, _weights(stateless)) != []
    resumed = subprocess.run([*command, "--resume"], env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert _different(expected, _weights(out)) == []
