import json

import torch

from spikeforge.cli import main
from spikeforge.neuron.sdn import SurrogateDynamicNetwork, spike_agreement
from spikeforge.train.sdn import train_sdn


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
    argv = ["sdn", "train", "--tau", "0.25", "--sequences", "60", "--length", "64", "--epochs", "1"]
    assert main([*argv, "--channels", "12", "--depth", "2", "--out", str(out)]) == 0
    saved = json.loads(out.read_text())
    assert saved["channels"] == 12 and saved["depth"] == 2
    assert "mixes.1.weight" in saved["state"]
    capsys.readouterr()
    assert main(["sdn", "eval", "--path", str(out), "--sequences", "40", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["tau"] == 0.25 and result["depth"] == 2 and 0 < result["spike_agreement"] <= 1
    assert {(r["std"], r["mean"]) for r in result["by_distribution"]} >= {(0.3, -0.5), (10.0, 0.5)}
