"""The vision SNNs: published sizes, inference folding, the MFI check and accumulate-only
inference on real Fashion-MNIST images."""

import pytest
import torch

from neurojoule.data import FashionMNISTDataset
from neurojoule.energy import (
    accumulate_only,
    fold_batchnorm,
    measure_energy,
    unfolded_batchnorms,
)
from neurojoule.models import build_model, list_models, model_entry, parameter_count
from neurojoule.neuron import LIF, SpikingNeuron

# Parameter counts as published: spiking MLP (Li et al., TNNLS 2024, ImageNet) and Spikformer
# (Zhou et al., ICLR 2023: 9.32M on CIFAR-10, 66.34M on ImageNet).
PUBLISHED = {
    "spiking-mlp-spe-t": 25e6,
    "spiking-mlp-spe-s": 38e6,
    "spikformer-4-384": 9.32e6,
    "spikformer-8-768": 66.34e6,
}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_published_variants_have_the_published_size(name):
    assert parameter_count(name) == pytest.approx(PUBLISHED[name], rel=0.01)


def test_mlp_s_without_patch_encoding():
    """Published 34M. The paper does not spell out its plain patch merging; with a 2x2
    stride-2 conv + BN we get 34.5M (+1.5 %), and exactly the SPE's extra weights apart."""
    plain, spe = parameter_count("spiking-mlp-s"), parameter_count("spiking-mlp-spe-s")
    assert plain == pytest.approx(34e6, rel=0.015)
    # per stage C (192, 384, 768): SPE 3 x 9 (C/2)(C/3) + 2 x 9 (C/3)^2 vs merging 4 (C/2) C
    convs = sum(4.5 * c * c + 2 * c * c - 2 * c * c for c in (192, 384, 768))
    norms = sum(2 * 5 * c // 3 - 2 * c for c in (192, 384, 768))  # BN weights and biases
    assert spe - plain == convs + norms


def test_parameter_count_equals_a_built_model():
    model = build_model("spiking-mlp")
    assert parameter_count("spiking-mlp") == sum(p.numel() for p in model.parameters())


@pytest.fixture(scope="module")
def images():
    try:
        test = FashionMNISTDataset("test", normalize=(0.2860, 0.3530))
    except FileNotFoundError:
        pytest.skip("Fashion-MNIST files not installed (Debian dataset-fashion-mnist)")
    return torch.stack([test[i][0] for i in range(24)])


def calibrated(name: str, images: torch.Tensor, **overrides) -> torch.nn.Module:
    """A model whose batch norms hold running statistics of real images, in eval mode."""
    torch.manual_seed(0)
    model = build_model(name, **overrides)
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.momentum = None  # cumulative average
    with torch.no_grad():
        for batch in images.split(8):
            model(batch)
    return model.eval()


def spikes_of(model: torch.nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, list]:
    recorded = []
    hooks = [
        m.register_forward_hook(lambda m, i, out: recorded.append(out))
        for m in model.modules()
        if isinstance(m, SpikingNeuron)
    ]
    with torch.no_grad():
        out = model(x)
    for hook in hooks:
        hook.remove()
    return out, recorded


@pytest.mark.parametrize("name", ["spiking-mlp", "spikformer"])
def test_folded_model_matches_the_eval_model_on_real_images(name, images):
    model = calibrated(name, images)
    folded = fold_batchnorm(model)
    assert unfolded_batchnorms(folded) == []
    torch.testing.assert_close(folded(images), model(images), atol=1e-5, rtol=1e-5)
    out, recorded = spikes_of(model.double(), images.double())
    folded_out, folded_recorded = spikes_of(fold_batchnorm(model), images.double())
    torch.testing.assert_close(folded_out, out, atol=1e-12, rtol=1e-12)
    assert len(recorded) == len(folded_recorded) > 10
    assert all(torch.equal(a, b) for a, b in zip(recorded, folded_recorded, strict=True))
    assert sum(s.sum().item() for s in recorded) > 0


def test_spiking_mlp_inference_is_multiplication_free(images):
    report = measure_energy(fold_batchnorm(calibrated("spiking-mlp", images)), [images])
    check = report.mfi()
    assert check.first_layer == "stem.conv_bn.module.0"
    assert check.holds, check.verdict
    assert report.time_steps == 4


def test_spikformer_reports_the_layers_fed_by_residual_sums(images):
    model = fold_batchnorm(calibrated("spikformer", images))
    check = measure_energy(model, [images]).mfi()
    violations = {entry.name for entry in check.violations}
    # x + RPE and x + SSA / x + MLP are sums of spikes: q, k, v and fc1 of each block read them,
    # and the head reads their average; the attention products read spikes (Q (K^T V) order)
    expected = {"head"} | {
        f"blocks.{b}.{layer}.module.0"
        for b in range(2)
        for layer in ("attention.q", "attention.k", "attention.v", "mlp.fc1")
    }
    assert violations == expected
    assert all(entry.input_max > 1 for entry in check.violations)
    assert not check.holds


def test_accumulate_only_inference_matches_the_dense_model(images):
    model = fold_batchnorm(calibrated("spiking-mlp", images)).double()
    x = images[:6].double()
    result = accumulate_only(model, x)
    assert result.dense == ["stem.conv_bn.module.0"]
    assert len(result.replaced) > 10
    with torch.no_grad():
        torch.testing.assert_close(result.model(x), model(x), atol=1e-10, rtol=1e-10)


def test_small_models_classify_their_input_shape():
    for name in ("spiking-mlp", "spikformer", "spiking-mlp-cifar", "spikformer-4-384"):
        _, channels, side, _ = model_entry(name).input_shape
        model = build_model(name, steps=1)
        assert model(torch.rand(2, channels, side, side)).shape == (2, 10)
        with pytest.raises(ValueError, match=f"expects float images \\[batch, {channels}, {side}"):
            model(torch.rand(2, channels, side + 1, side))


def test_per_block_settings_reach_the_neurons():
    model = build_model(
        "spikformer", depth=2, heads=(2, 4), v_threshold=(0.8, 1.6), tau=(1.25, 10.0)
    )
    first, second = model.blocks
    assert (first.attention.heads, second.attention.heads) == (2, 4)
    assert second.mlp.lif1.v_threshold == 1.6 and second.mlp.lif1.tau == 10.0
    assert first.attention.attn_lif.v_threshold == 0.5
    with pytest.raises(ValueError, match="one value or 2"):
        build_model("spikformer", depth=2, heads=(2, 4, 4))
    with pytest.raises(ValueError, match="unknown SpikingMLPConfig fields \\['width'\\]"):
        build_model("spiking-mlp", width=3)


@pytest.mark.parametrize("name", ["spiking-mlp", "spikformer", "dense-snn"])
def test_image_models_reject_non_finite_pixels_and_empty_batches(name):
    _, channels, side, _ = model_entry(name).input_shape
    model = build_model(name, steps=1)
    images = torch.rand(2, channels, side, side)
    images[1, 0, 3, 3] = float("nan")
    with pytest.raises(ValueError, match="input has 1 non-finite value"):
        model(images)
    with pytest.raises(ValueError, match="batch of 0"):
        model(torch.rand(0, channels, side, side))


def test_dense_snn_is_registered_and_builds_with_the_sizes_train_passes():
    model = build_model("dense-snn", num_classes=10, in_channels=1, image_size=8)
    assert model_entry("dense-snn").input_shape == ("batch", 1, 8, 8)
    images = torch.rand(5, 1, 8, 8)
    logits = model(images)
    assert logits.shape == (5, 10)
    torch.testing.assert_close(model(images.flatten(1)), logits, rtol=0, atol=0)
    wide = build_model("dense-snn", {"hidden": (32,)}, num_classes=3, in_channels=2, image_size=4)
    assert wide(torch.rand(2, 2, 4, 4)).shape == (2, 3)
    assert [m.channels for m in wide.modules() if isinstance(m, LIF)] == [32]
    with pytest.raises(
        ValueError, match=r"expects float images \[batch, 2, 4, 4\] or \[batch, 32\]"
    ):
        wide(torch.rand(2, 1, 4, 4))


def test_every_registered_model_builds_by_name_with_its_defaults():
    for name in list_models():
        entry = model_entry(name)
        assert entry.description and entry.input_shape[0] == "batch"
        assert parameter_count(name) > 0
