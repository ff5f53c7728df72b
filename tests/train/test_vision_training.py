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


def _layers_with_non_binary_input(checkpoint, names: list[str], samples: int) -> list[str]:
    """The reference for the MFI verdict: run the deployed (folded) model on the evaluated
    samples with a hook on each named synaptic layer, and list those whose input held a value
    other than 0 and 1."""
    import torch

    from neurojoule.energy import fold_batchnorm
    from neurojoule.train.evaluation import evaluation_split

    _, model, dataset = evaluation_split(checkpoint, "test", "bptt", limit_samples=samples)
    model = fold_batchnorm(model)
    non_binary = set()
    modules = dict(model.named_modules())
    for name in names:
        modules[name].register_forward_pre_hook(
            lambda module, args, name=name: non_binary.update(
                [name] if not ((args[0] == 0) | (args[0] == 1)).all() else []
            )
        )
    with torch.no_grad():
        for x, _ in torch.utils.data.DataLoader(dataset, batch_size=16):
            model(x)
    return [name for name in names if name in non_binary]


@pytest.mark.parametrize("model", ["spiking-mlp", "spikformer"])
def test_train_then_eval_reports_accuracy_rates_energy_and_mfi(
    model, fashion_mnist, tmp_path, capsys
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
    names = [layer["name"] for layer in energy["layers"]]
    expected = _layers_with_non_binary_input(checkpoint, names, 32)
    assert energy["mfi"]["first_layer"] == names[0] and expected[:1] == names[:1]  # the image
    assert energy["mfi"]["violations"] == expected[1:]
    if model == "spiking-mlp":  # multiplication-free by construction
        assert energy["mfi"]["holds"]
    assert len(result["spike_rates"]) > 5
    assert main(["eval", str(checkpoint), "--limit", "32"]) == 0
    text = capsys.readouterr().out
    assert ("MFI holds" if energy["mfi"]["holds"] else "MFI refuted") in text
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
