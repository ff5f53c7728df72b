"""Models by name, in the style of timm: each family registers its builders beside them.

    @register_model("spiking-ssm", input_shape=("batch", "length", 1))
    def spiking_ssm(config=None, **overrides) -> nn.Module:
        \"\"\"One-line description (the registry's description of the model).\"\"\"

A builder takes an optional base config (its family's config dataclass, or a mapping of its
fields) and keyword overrides, and returns an nn.Module; `merge_config` is the one way they
turn those into the family's config. `input_shape` describes one input batch of the default
model ("batch", "length" name free sizes). The families' modules register on import of
`neurojoule.models`.
"""

from __future__ import annotations

import dataclasses
import fnmatch
from collections.abc import Callable, Mapping
from typing import NamedTuple, TypeVar

import torch
from torch import nn

Builder = Callable[..., nn.Module]
Config = TypeVar("Config")


class ModelEntry(NamedTuple):
    builder: Builder
    description: str
    input_shape: tuple[int | str, ...]


_MODELS: dict[str, ModelEntry] = {}


def register_model(
    name: str, *, input_shape: tuple[int | str, ...], description: str | None = None
) -> Callable[[Builder], Builder]:
    """Decorator: register the builder under `name` (unique). The description defaults to the
    first line of the builder's docstring."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"expected a non-empty model name, got {name!r}")

    def register(builder: Builder) -> Builder:
        if name in _MODELS:
            raise ValueError(f"model {name!r} is already registered")
        if not callable(builder):
            raise ValueError(
                f"expected a callable builder for {name!r}, got {type(builder).__name__}"
            )
        text = description or (builder.__doc__ or "").strip().split("\n")[0]
        if not text:
            raise ValueError(f"model {name!r} needs a description or a builder docstring")
        _MODELS[name] = ModelEntry(builder, text, tuple(input_shape))
        return builder

    return register


def list_models(pattern: str = "*") -> list[str]:
    """Registered names matching the shell-style `pattern` ("spiking-*", "*-lm"), sorted."""
    return sorted(name for name in _MODELS if fnmatch.fnmatchcase(name, pattern))


def model_entry(name: str) -> ModelEntry:
    if name not in _MODELS:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(list_models())}")
    return _MODELS[name]


def build_model(name: str, config: object = None, **overrides) -> nn.Module:
    """Build the model registered as `name` from an optional base config and overrides."""
    return model_entry(name).builder(config, **overrides)


def parameter_count(name: str) -> int:
    """Parameters of the default model `name` (built without allocating its weights)."""
    with torch.device("meta"):
        model = build_model(name)
    return sum(p.numel() for p in model.parameters())


def merge_config(
    cls: type[Config],
    config: object,
    overrides: Mapping,
    *,
    preset: Mapping | None = None,
    fixed: Mapping | None = None,
) -> Config:
    """An instance of the config dataclass `cls`, merged in one order for every family.

    `config` is an instance of `cls` (complete: the variant's `preset` is not applied to it) or
    a mapping of fields over the `preset`; `overrides` go on top. `fixed` are fields the model
    name decides: a base instance takes them silently (its values are often just defaults),
    a mapping or override that contradicts them is an error. Unknown fields are an error
    naming the known ones.
    """
    fixed = dict(fixed or {})
    if isinstance(config, cls):
        base, explicit = dataclasses.asdict(config), dict(overrides)
    elif config is None or isinstance(config, Mapping):
        base, explicit = dict(preset or {}), {**dict(config or {}), **overrides}
    else:
        raise ValueError(f"expected a {cls.__name__} or a mapping, got {type(config).__name__}")
    conflicts = {key: value for key, value in explicit.items() if fixed.get(key, value) != value}
    if conflicts:
        raise ValueError(f"this model fixes {fixed}, got contradicting overrides {conflicts}")
    fields = {**base, **explicit, **fixed}
    known = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(fields) - set(known))
    if unknown:
        raise ValueError(f"unknown {cls.__name__} fields {unknown}; known fields: {known}")
    return cls(**fields)


def describe_models(pattern: str = "*") -> list[dict]:
    """The models matching `pattern`: name, parameters, input shape and description each."""
    return [
        {
            "name": name,
            "params": parameter_count(name),
            "input_shape": list(model_entry(name).input_shape),
            "description": model_entry(name).description,
        }
        for name in list_models(pattern)
    ]


def format_model_table(rows: list[dict]) -> str:
    """The table `neurojoule models` prints: a header row, then one row per model."""
    shapes = ["[" + ", ".join(map(str, row["input_shape"])) + "]" for row in rows]
    width = max([len("model"), *(len(row["name"]) for row in rows)])
    shape_width = max([len("input"), *map(len, shapes)])
    lines = [f"{'model':<{width}}  {'params':>9}  {'input':<{shape_width}}  description"]
    lines += [
        f"{row['name']:<{width}}  {row['params'] / 1e6:8.2f}M  {shape:<{shape_width}}  "
        f"{row['description']}"
        for row, shape in zip(rows, shapes, strict=True)
    ]
    return "\n".join(lines)
