"""Training and evaluating the vision SNNs end to end through the command line."""

import json

import pytest

from spikeforge.cli import main
from spikeforge.data.fashion_mnist import find_fashion_mnist


@pytest.fixture
def fashion_mnist():
    try:
        find_fashion_mnist("test")
    except FileNotFoundError:
        pytest.skip("Fashion-MNIST files not installed (Debian dataset-fashion-mnist)")


TINY = [
    "--set", "limit_train_samples=64",
    "--set", "limit_eval_samples=32",
    "--set", "optim.batch_size=32",
    "--set", "model_options.steps=2",
    "--epochs", "1",
    "--quiet",
]  # fmt: skip


# the spiking MLP's inference is multiplication-free by construction; whether Spikformer's
# residual sums exceed 1 depends on its training (tests/models checks a calibrated one)
@pytest.mark.parametrize("model, mfi_holds", [("spiking-mlp", True), ("spikformer", None)])
def test_train_then_eval_reports_accuracy_rates_energy_and_mfi(
    model, mfi_holds, fashion_mnist, tmp_path, capsys
):
    out = tmp_path / model
    assert main(["train", model, "--dataset", "fashion-mnist", "--out", str(out), *TINY]) == 0
    checkpoint = out / "checkpoints" / "last.ckpt"
    capsys.readouterr()
    assert main(["eval", str(checkpoint), "--limit", "32", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["samples"] == 32 and 0.0 <= result["accuracy"] <= 1.0
    assert result["unfolded_batchnorms"] == []
    energy = result["energy"]
    assert energy["time_steps"] == 2
    assert energy["mfi"]["holds"] is mfi_holds or mfi_holds is None
    assert len(result["spike_rates"]) > 5
    assert main(["eval", str(checkpoint), "--limit", "32"]) == 0
    text = capsys.readouterr().out
    assert "MFI holds" in text if mfi_holds else "MFI " in text
    assert "batch norms folded into the synapses (all)" in text
