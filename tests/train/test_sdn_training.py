import json

import pytest
import torch

from neurojoule.cli import main
from neurojoule.neuron.sdn import SurrogateDynamicNetwork, save_sdn, spike_agreement
from neurojoule.train.sdn import make_dataset, train_sdn


def test_training_beats_the_untrained_network():
    y = torch.randn(100, 256, generator=torch.Generator().manual_seed(3))
    before, _ = spike_agreement(SurrogateDynamicNetwork(0.125).eval(), y)
    net, metrics = train_sdn(0.125, sequences=400, length=256, epochs=3, progress=False)
    after, mae = spike_agreement(net, y)
    assert after > 0.97 and after > before
    assert metrics["epochs_run"] == 3 and 1 <= metrics["best_epoch"] <= 3


def test_time_budget_stops_after_a_fitting_epoch():
    _, metrics = train_sdn(
        0.25, sequences=200, length=128, epochs=50, progress=False, max_seconds=1e-6
    )
    assert metrics["epochs_run"] == 1


def test_cli_train_then_eval(tmp_path, capsys):
    out = tmp_path / "sdn.json"
    argv = ["sdn", "train", "--decay", "0.25", "--sequences", "60", "--length", "64"]
    argv += ["--epochs", "1"]
    assert main([*argv, "--channels", "12", "--depth", "2", "--out", str(out)]) == 0
    saved = json.loads(out.read_text())
    assert saved["channels"] == 12 and saved["depth"] == 2
    assert "mixes.1.weight" in saved["state"]
    capsys.readouterr()
    assert main(["sdn", "eval", "--path", str(out), "--sequences", "40", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["decay"] == 0.25 and result["depth"] == 2 and 0 < result["spike_agreement"] <= 1
    assert {(r["std"], r["mean"]) for r in result["by_distribution"]} >= {(0.3, -0.5), (10.0, 0.5)}


def test_evaluation_inputs_are_never_training_inputs(monkeypatch):
    from neurojoule.train import sdn as sdn_training

    seen = []
    monkeypatch.setattr(
        sdn_training, "spike_agreement", lambda net, y: seen.append(y) or (1.0, 0.0)
    )
    for seed in (0, 1):
        sdn_training.evaluate_sdn(SurrogateDynamicNetwork(0.5).eval(), 8, 32, seed=seed)
        for train_seed in (0, 1, seed):
            y_train, _ = make_dataset(0.5, 8, 32, train_seed)
            assert not any(torch.equal(row, y) for row in y_train for y in seen[-1])
    with pytest.raises(ValueError, match="seeds lie in"):
        train_sdn(0.5, sequences=10, length=8, epochs=1, seed=2**40, progress=False)


def test_evaluation_rejects_too_few_sequences_and_a_file_of_another_tau(tmp_path, capsys):
    from neurojoule.train.sdn import evaluate_sdn

    with pytest.raises(ValueError, match="at least 4 sequences"):
        evaluate_sdn(SurrogateDynamicNetwork(0.5).eval(), sequences=3)
    out = tmp_path / "sdn.json"
    save_sdn(SurrogateDynamicNetwork(0.25), out)
    assert main(["sdn", "eval", "--decay", "0.5", "--path", str(out)]) == 2
    assert "holds an SDN for decay 0.25, not 0.5" in capsys.readouterr().err
