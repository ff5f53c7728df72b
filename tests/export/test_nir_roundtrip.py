"""Export to a .nir file and import back, on real test images: the same spikes at every
spiking layer and the same outputs as the model exported (the spiking MLP: its folded copy).

Each spiking layer of the original is compared with the node of the same name in the imported
network (torch.equal). The reference is the model itself, run as the library runs it; the
imported network is built from the file alone.
"""

from __future__ import annotations

import nir
import pytest
import torch

from neurojoule.data.digits import load_digits_images
from neurojoule.energy import fold_batchnorm
from neurojoule.export import export_nir, import_nir, read_nir, write_nir
from neurojoule.layers.spiking_ssm import SpikingS4DBlock
from neurojoule.layers.time_first import repeat_steps
from neurojoule.models import build_model
from neurojoule.neuron import lif_layers

DIGITS_MEAN_STD = (0.3053, 0.3760)  # configs/digits.yaml
FASHION_MEAN_STD = (0.2860, 0.3530)  # configs/fashion-mnist.yaml


@pytest.fixture(scope="module")
def digits_splits():
    return load_digits_images(normalize=DIGITS_MEAN_STD)


@pytest.fixture(scope="module")
def digits(digits_splits) -> torch.Tensor:
    """128 images [1, 8, 8] of the digits test split."""
    return digits_splits[2].tensors[0][:128]


def trained_dense_snn(train) -> torch.nn.Module:
    """A small dense-snn after 20 Adam steps on digits (its thresholds learned per neuron)."""
    torch.manual_seed(0)
    model = build_model("dense-snn", hidden=(64, 32), steps=6)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    images, labels = train.tensors
    for step in range(20):
        batch = torch.arange(step * 32, step * 32 + 32) % len(labels)
        loss = torch.nn.functional.cross_entropy(model(images[batch]), labels[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


@pytest.fixture(scope="module")
def fashion() -> torch.Tensor:
    """96 Fashion-MNIST test images [1, 28, 28]."""
    from neurojoule.data import FashionMNISTDataset

    try:
        test = FashionMNISTDataset("test", normalize=FASHION_MEAN_STD)
    except FileNotFoundError:
        pytest.skip("Fashion-MNIST files not installed (Debian dataset-fashion-mnist)")
    return torch.stack([test[i][0] for i in range(96)])


def round_trip(model: torch.nn.Module, tmp_path, name: str):
    """The model written to a .nir file with nir.write and imported from that file."""
    path = write_nir(export_nir(model, name=name), tmp_path / f"{name}.nir")
    assert isinstance(nir.read(path), nir.NIRGraph)  # plain nir reads it, types checked
    return import_nir(path)


def recorded(modules: dict[str, torch.nn.Module], run) -> tuple[dict, object]:
    """(output of each module by name, run()) with forward hooks."""
    outputs = {}
    hooks = [
        module.register_forward_hook(lambda m, i, out, name=name: outputs.__setitem__(name, out))
        for name, module in modules.items()
    ]
    try:
        with torch.no_grad():
            result = run()
    finally:
        for hook in hooks:
            hook.remove()
    return outputs, result


def assert_same_spikes(original: dict, imported: dict) -> None:
    assert original.keys() == imported.keys() and original
    for name, spikes in original.items():
        assert torch.equal(spikes, imported[name]), name
        rate = spikes.mean().item()
        assert 0.0 < rate < 1.0, f"{name} fires at rate {rate}: the comparison says nothing"


def test_digits_network_round_trip(digits_splits, digits, tmp_path):
    model = trained_dense_snn(digits_splits[0])
    accuracy = (model(digits).argmax(1) == digits_splits[2].tensors[1][:128]).float().mean()
    assert accuracy > 0.5  # it learned something: the spikes carry the digits
    net = round_trip(model, tmp_path, "dense-snn")
    layers = lif_layers(model)
    original, logits = recorded(layers, lambda: model.step_logits(digits))
    nodes = {name: net.node(name) for name in layers}
    imported, out = recorded(nodes, lambda: net(repeat_steps(digits, 6)))
    assert_same_spikes(original, imported)
    assert torch.equal(out, logits) and torch.equal(out.mean(0), model(digits))


def calibrated_mlp(images: torch.Tensor, **options) -> torch.nn.Module:
    """A small spiking MLP for 28x28 images whose batch norms hold running statistics of real
    images (so folding them changes the weights), in eval mode."""
    torch.manual_seed(0)
    model = build_model("spiking-mlp", dim=6, depths=(1, 1), **options)
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.momentum = None  # a cumulative average
    with torch.no_grad():
        for batch in images.split(16):
            model(batch)
    return model.eval()


@pytest.mark.parametrize("spe", [True, False], ids=["patch-encoding", "patch-merging"])
def test_spiking_mlp_round_trip(fashion, spe, tmp_path):
    model = calibrated_mlp(fashion[:32], spe=spe)
    images = fashion[32:]
    net = round_trip(model, tmp_path, "spiking-mlp")
    folded = fold_batchnorm(model)  # what the export writes
    layers = lif_layers(folded)
    original, logits = recorded(layers, lambda: folded.step_logits(images))
    nodes = {name: net.node(name) for name in layers}
    imported, out = recorded(nodes, lambda: net(repeat_steps(images, folded.config.steps)))
    assert_same_spikes(original, imported)
    assert torch.equal(out, logits)


def test_spiking_ssm_neurons_round_trip(digits, tmp_path):
    """The graph holds each block's neuron and 1x1 conv; fed the currents the model's neurons
    received (digits as 64-step pixel sequences), it gives the same spikes, and the conv's
    output to float rounding (a per-step matrix product instead of a 1x1 Conv1d)."""
    torch.manual_seed(0)
    model = build_model("spiking-ssm", d_model=12, n_layers=2, d_state=8, in_channels=1)
    with torch.no_grad():
        for block in model.modules():
            if isinstance(block, SpikingS4DBlock):  # thresholds of their own, per channel
                block.neuron.ln_vth.uniform_(-1.0, 0.5)
    model.eval()
    blocks = {n: b for n, b in model.named_modules() if isinstance(b, SpikingS4DBlock)}
    net = round_trip(model, tmp_path, "spiking-ssm")
    assert sorted(net.input_shapes) == sorted(f"{n}.current" for n in blocks)
    currents, spikes, convs = {}, {}, {}
    hooks = []
    for name, block in blocks.items():

        def neuron_hook(module, inputs, out, name=name):
            currents[name], spikes[name] = inputs[0], out

        hooks.append(block.neuron.register_forward_hook(neuron_hook))
        hooks.append(
            block.conv.register_forward_hook(lambda m, i, out, n=name: convs.update({n: out}))
        )
    with torch.no_grad():
        model(digits.flatten(1).unsqueeze(-1))  # [B, 64, 1]
    for hook in hooks:
        hook.remove()
    time_first = {f"{n}.current": c.permute(2, 0, 1) for n, c in currents.items()}  # [L, B, H]
    nodes = {name: net.node(f"{name}.neuron") for name in blocks}
    imported, outputs = recorded(nodes, lambda: net(time_first))
    assert_same_spikes({n: s.permute(2, 0, 1) for n, s in spikes.items()}, imported)
    for name, conv in convs.items():
        torch.testing.assert_close(outputs[f"{name}.conv_out"], conv.permute(2, 0, 1))


def test_the_graph_states_dt_and_the_cut(tmp_path):
    torch.manual_seed(0)
    model = build_model("spiking-ssm", d_model=4, n_layers=1, d_state=4, in_channels=1)
    graph = read_nir(write_nir(export_nir(model, dt=0.001), tmp_path / "ssm.nir"))
    assert float(graph.metadata["dt"]) == 0.001
    assert "S4D convolution" in graph.metadata["cut"] and "GLU" in graph.metadata["cut"]
    net = import_nir(graph)
    assert net.dt == 0.001
