"""Training and evaluating the vision SNNs end to end through the command line."""

import json

import pytest

from neurojoule.cli import main
from neurojoule.data.fashion_mnist import find_fashion_mnist


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


@pytest.mark.parametrize("model", ["spiking-mlp", "spikformer"])
def test_tet_loss_is_the_mean_of_the_per_step_cross_entropies(model):
    import torch

    from neurojoule.train.config import load_config
    from neurojoule.train.module import ClassifierModule
    from neurojoule.train.splits import make_splits

    overrides = [f"model={model}", "task=digits", "model_options.steps=3"]
    config = load_config("fashion-mnist", overrides)
    train_set, _, _, info = make_splits(config)
    x, y = next(iter(torch.utils.data.DataLoader(train_set, batch_size=8)))
    losses = {}
    for loss in ("ce", "tet"):
        config.loss = loss
        torch.manual_seed(0)
        module = ClassifierModule(config.to_dict(), info.__dict__)
        module.log = lambda *args, **kwargs: None
        losses[loss] = module.training_step((x, y), 0).item()
    torch.manual_seed(0)
    network = ClassifierModule(config.to_dict(), info.__dict__).model.train()
    per_step = network.step_logits(x)
    assert per_step.shape == (3, 8, 10)
    ce = torch.nn.functional.cross_entropy
    expected_tet = sum(ce(per_step[t], y).item() for t in range(3)) / 3
    assert losses["tet"] == pytest.approx(expected_tet, rel=1e-5)
    assert losses["ce"] == pytest.approx(ce(per_step.mean(0), y).item(), rel=1e-5)
    assert losses["tet"] != pytest.approx(losses["ce"], rel=1e-3)


def test_tet_loss_needs_a_model_with_per_step_outputs():
    from neurojoule.data.tasks import TaskInfo
    from neurojoule.train.config import load_config
    from neurojoule.train.module import ClassifierModule

    with pytest.raises(ValueError, match="loss must be one of"):
        load_config("listops-cpu", ["loss=mse"])
    config = load_config("listops-cpu", ["loss=tet"])
    info = TaskInfo("listops", num_classes=10, seq_len=100, vocab_size=20)
    with pytest.raises(ValueError, match="per-step outputs"):
        ClassifierModule(config.to_dict(), info.__dict__)
