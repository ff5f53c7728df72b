"""Models by name: `build_model("spiking-ssm", d_model=128, vocab_size=18)`.

Each entry is (builder, description). A builder takes an optional base config (its family's
config object or a mapping of fields) and keyword overrides, and returns an nn.Module.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import NamedTuple

from torch import nn

from spikeforge.models.ssm import CausalLM, SequenceClassifier, SSMConfig, ssm_config

BYTE_VOCAB_SIZE = 257  # byte-level token ids: id 0 pads, byte b is id b + 1


class ModelEntry(NamedTuple):
    builder: Callable[..., nn.Module]
    description: str


_MODELS: dict[str, ModelEntry] = {}


def register_model(name: str, builder: Callable[..., nn.Module], description: str) -> None:
    """Add `builder` under `name`; names are unique."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"expected a non-empty model name, got {name!r}")
    if name in _MODELS:
        raise ValueError(f"model {name!r} is already registered")
    if not callable(builder):
        raise ValueError(f"expected a callable builder for {name!r}, got {type(builder).__name__}")
    _MODELS[name] = ModelEntry(builder, description)


def model_names() -> list[str]:
    return sorted(_MODELS)


def model_entry(name: str) -> ModelEntry:
    if name not in _MODELS:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(model_names())}")
    return _MODELS[name]


def build_model(name: str, config: object = None, **overrides) -> nn.Module:
    """Build the model registered as `name` from an optional base config and overrides."""
    return model_entry(name).builder(config, **overrides)


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
)
register_model(
    "s4d",
    _classifier_builder(spiking=False),
    "S4D sequence classifier: the non-spiking baseline (GELU instead of LIF)",
)
register_model(
    "spiking-ssm-lm",
    _lm_builder(spiking=True),
    "SpikingSSM causal language model: unidirectional kernel, layer norm, per-position logits",
)
register_model(
    "s4d-lm",
    _lm_builder(spiking=False),
    "S4D causal language model: the non-spiking baseline of spiking-ssm-lm",
)
