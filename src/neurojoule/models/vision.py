"""Shared pieces of the time-first vision models: config handling and the time average."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping


def vision_config(cls, config: object, overrides: dict):
    """An instance of the dataclass `cls` from a base config (an instance or a mapping) and
    keyword overrides; unknown keys raise a ValueError naming the known ones."""
    if isinstance(config, cls):
        base = dataclasses.asdict(config)
    elif config is None or isinstance(config, Mapping):
        base = dict(config or {})
    else:
        raise ValueError(f"expected a {cls.__name__} or a mapping, got {type(config).__name__}")
    fields = {**base, **overrides}
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(fields) - known)
    if unknown:
        raise ValueError(
            f"{cls.__name__} has no fields {unknown}; expected some of {sorted(known)}"
        )
    return cls(**fields)


def per_block(value, depth: int, name: str) -> tuple:
    """A setting given once for all blocks, or once per block, as a tuple of `depth` values."""
    values = tuple(value) if isinstance(value, (list, tuple)) else (value,) * depth
    if len(values) != depth:
        raise ValueError(f"{name}: expected one value or {depth} (one per block), got {value}")
    return values
