"""A run folder written by the package before its rename (0.1.0, commit 7459d14) still loads,
evaluates and resumes: checkpoints hold plain tensors and dicts, never module paths.

The fixture (tests/fixtures/pre-rename-run) is a 1-epoch SpikingSSM run on a tiny ListOps
set; reference_logits.json holds the logits that the old package computed for fixed tokens.
"""

import json
import shutil
from pathlib import Path

import pytest
import torch

from neurojoule.cli import main
from neurojoule.train import load_checkpoint

FIXTURE = Path(__file__).parent.parent / "fixtures" / "pre-rename-run"


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("NEUROJOULE_CACHE", str(tmp_path / "cache"))


def test_the_old_checkpoint_gives_the_logits_the_old_package_computed():
    reference = json.loads((FIXTURE / "reference_logits.json").read_text())
    _, _, model = load_checkpoint(FIXTURE / "checkpoints" / "last.ckpt")
    with torch.no_grad():
        logits = model(torch.tensor(reference["tokens"]))
    torch.testing.assert_close(logits, torch.tensor(reference["logits"]), atol=1e-5, rtol=1e-5)


def test_the_old_checkpoint_evaluates_to_the_old_accuracy(cache, capsys):
    assert main(["eval", str(FIXTURE / "checkpoints" / "last.ckpt"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    reference = json.loads((FIXTURE / "reference_logits.json").read_text())
    assert result["samples"] == 16
    assert result["accuracy"] == reference["test_accuracy_16"]


def test_the_old_run_folder_resumes(tmp_path, cache, capsys):
    run = tmp_path / "run"
    shutil.copytree(FIXTURE, run)
    argv = ["train", "spiking-ssm", "--task", "listops", "--config", str(run / "config.yaml")]
    argv += ["--out", str(run), "--resume", "--epochs", "2", "--quiet"]
    assert main(argv) == 0
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["epoch"] == 1  # the second epoch (counted from 0) ran


def test_an_old_checkpoint_with_the_ssm_decay_named_tau_loads(tmp_path):
    checkpoint = torch.load(FIXTURE / "checkpoints" / "last.ckpt", weights_only=True)
    checkpoint["hyper_parameters"]["config"]["model_options"]["tau"] = 0.25  # the old name
    torch.save(checkpoint, tmp_path / "old.ckpt")
    config, _, model = load_checkpoint(tmp_path / "old.ckpt")
    assert config.model_options["decay"] == 0.25 and "tau" not in config.model_options
    (neuron,) = (m for m in model.modules() if type(m).__name__ == "SSMNeuron")
    assert neuron.decay == 0.25
