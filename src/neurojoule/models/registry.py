"""Models by name: `build_model("spiking-ssm", d_model=128, vocab_size=18)`.

Each entry is (builder, description, input_shape). A builder takes an optional base config
(its family's config object or a mapping of fields) and keyword overrides, and returns an
nn.Module. `input_shape` describes one input batch of the default model ("batch", "length"
name free sizes).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import NamedTuple

import torch
from torch import nn

from neurojoule.models.spikformer import spikformer
from neurojoule.models.spiking_mlp import spiking_mlp
from neurojoule.models.ssm import CausalLM, SequenceClassifier, SSMConfig, ssm_config

BYTE_VOCAB_SIZE = 257  # byte-level token ids: id 0 pads, byte b is id b + 1


class ModelEntry(NamedTuple):
    builder: Callable[..., nn.Module]
    description: str
    input_shape: tuple[int | str, ...]


_MODELS: dict[str, ModelEntry] = {}


def register_model(
    name: str,
    builder: Callable[..., nn.Module],
    description: str,
    input_shape: tuple[int | str, ...],
) -> None:
    """Add `builder` under `name`; names are unique."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"expected a non-empty model name, got {name!r}")
    if name in _MODELS:
        raise ValueError(f"model {name!r} is already registered")
    if not callable(builder):
        raise ValueError(f"expected a callable builder for {name!r}, got {type(builder).__name__}")
    _MODELS[name] = ModelEntry(builder, description, tuple(input_shape))


def model_names() -> list[str]:
    return sorted(_MODELS)


def model_entry(name: str) -> ModelEntry:
    if name not in _MODELS:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(model_names())}")
    return _MODELS[name]


def build_model(name: str, config: object = None, **overrides) -> nn.Module:
    """Build the model registered as `name` from an optional base config and overrides."""
    return model_entry(name).builder(config, **overrides)


def parameter_count(name: str) -> int:
    """Parameters of the default model `name` (built without allocating its weights)."""
    with torch.device("meta"):
        model = build_model(name)
    return sum(p.numel() for p in model.parameters())


def _ssm_fields(
    config: SSMConfig | Mapping | None, overrides: dict, fixed: dict, defaults: dict
) -> dict:
    """Fields for an SSMConfig. The model name fixes `fixed`: a base SSMConfig takes them
    silently (its values are often just defaults), an explicit mapping or override that
    contradicts them is an error. `defaults` fill in only when no SSMConfig is given."""
    if isinstance(config, SSMConfig):
        base = dataclasses.asdict(config)
    else:
        overrides = {**dict(config or {}), **overrides}
        base = dict(defaults)
    conflicts = {key: value for key, value in overrides.items() if fixed.get(key, value) != value}
    if conflicts:
        raise ValueError(f"this model fixes {fixed}, got contradicting overrides {conflicts}")
    return {**base, **overrides, **fixed}


def _classifier_builder(spiking: bool) -> Callable[..., SequenceClassifier]:
    def build(config: SSMConfig | Mapping | None = None, **overrides) -> SequenceClassifier:
        fields = _ssm_fields(config, overrides, {"spiking": spiking}, {})
        if fields.get("vocab_size") is None and fields.get("in_channels") is None:
            fields["in_channels"] = 1  # one real value per step, e.g. sequential pixels
        return SequenceClassifier(ssm_config(fields))

    return build


def _lm_builder(spiking: bool) -> Callable[..., CausalLM]:
    fixed = {"spiking": spiking, "causal": True, "bidirectional": False}
    defaults = {"norm": "layer", "vocab_size": BYTE_VOCAB_SIZE}

    def build(config: SSMConfig | Mapping | None = None, **overrides) -> CausalLM:
        return CausalLM(ssm_config(_ssm_fields(config, overrides, fixed, defaults)))

    return build


register_model(
    "spiking-ssm",
    _classifier_builder(spiking=True),
    "SpikingSSM sequence classifier: S4D -> LIF with learnable threshold -> 1x1 conv + GLU",
    ("batch", "length", 1),
)
register_model(
    "s4d",
    _classifier_builder(spiking=False),
    "S4D sequence classifier: the non-spiking baseline (GELU instead of LIF)",
    ("batch", "length", 1),
)
register_model(
    "spiking-ssm-lm",
    _lm_builder(spiking=True),
    "SpikingSSM causal language model: unidirectional kernel, layer norm, per-position logits",
    ("batch", "length"),
)
register_model(
    "s4d-lm",
    _lm_builder(spiking=False),
    "S4D causal language model: the non-spiking baseline of spiking-ssm-lm",
    ("batch", "length"),
)


def _vision_builder(family: Callable[..., nn.Module], **preset) -> Callable[..., nn.Module]:
    """A builder of `family` whose defaults are `preset` (a published or small variant)."""

    def build(config: object = None, **overrides) -> nn.Module:
        if isinstance(config, Mapping):
            config, overrides = None, {**preset, **config, **overrides}
        elif config is None:
            overrides = {**preset, **overrides}
        return family(config, **overrides)

    return build


def _register_vision(name: str, family, description: str, **preset) -> None:
    channels = preset.get("in_channels", 3)
    side = preset["image_size"]
    register_model(
        name, _vision_builder(family, **preset), description, ("batch", channels, side, side)
    )


_IMAGENET = {"image_size": 224, "in_channels": 3, "num_classes": 1000}
_FASHION = {"image_size": 28, "in_channels": 1, "num_classes": 10}
_CIFAR = {"image_size": 32, "in_channels": 3, "num_classes": 10}

_register_vision(
    "spiking-mlp-spe-t",
    spiking_mlp,
    "Spiking MLP-SPE-T (ImageNet, 25M): dim 78, depths 2-8-14-2, spiking patch encoding, T=4",
    **_IMAGENET,
    dim=78,
)
_register_vision(
    "spiking-mlp-spe-s",
    spiking_mlp,
    "Spiking MLP-SPE-S (ImageNet, 38M): dim 96, depths 2-8-14-2, spiking patch encoding, T=4",
    **_IMAGENET,
)
_register_vision(
    "spiking-mlp-s",
    spiking_mlp,
    "Spiking MLP-S (ImageNet, published 34M, 34.5M here): MLP-SPE-S with 2x2 conv patch merging",
    **_IMAGENET,
    spe=False,
)
_register_vision(
    "spiking-mlp-spe-b",
    spiking_mlp,
    "Spiking MLP-SPE-B (ImageNet, published 66M; dim 126 here gives 65M), T=6",
    **_IMAGENET,
    dim=126,
    steps=6,
)
_register_vision(
    "spiking-mlp",
    spiking_mlp,
    "small spiking MLP for 28x28 images (Fashion-MNIST): patch 2, dim 24, depths 1-1-2-1, T=4",
    **_FASHION,
    dim=24,
    depths=(1, 1, 2, 1),
    patch_size=2,
)
_register_vision(
    "spiking-mlp-cifar",
    spiking_mlp,
    "small spiking MLP for 32x32 images (CIFAR): patch 2, dim 48, depths 1-2-2-1, T=4",
    **_CIFAR,
    dim=48,
    depths=(1, 2, 2, 1),
    patch_size=2,
)
_register_vision(
    "spikformer-8-768",
    spikformer,
    "Spikformer-8-768 (ImageNet, 66M): 8 blocks, dim 768, 12 heads, T=4",
    **_IMAGENET,
    embed_dim=768,
    depth=8,
    pools=(True, True, True, True),
)
_register_vision(
    "spikformer-4-384",
    spikformer,
    "Spikformer-4-384 (CIFAR-10, 9.3M): 4 blocks, dim 384, 12 heads, T=4",
    **_CIFAR,
)
_register_vision(
    "spikformer",
    spikformer,
    "small Spikformer for 28x28 images (Fashion-MNIST): 2 blocks, dim 128, 4 heads, 16 tokens, T=4",
    **_FASHION,
    embed_dim=128,
    depth=2,
    heads=4,
    pools=(True, False, True, True),
)
