"""Surrogate gradients and the one spike function every neuron uses.

`spike(v, surrogate)` is the Heaviside step H(v) (a spike where v >= 0, v being the membrane
potential minus the threshold) in the forward pass; in the backward pass the step's zero
derivative is replaced by the surrogate's smooth derivative.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, fields

import torch


@dataclass(frozen=True)
class Surrogate:
    """Base class: a named surrogate derivative dS/dv with float parameters."""

    name = "surrogate"

    def derivative(self, v: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def __str__(self) -> str:
        args = ", ".join(f"{f.name}={getattr(self, f.name)}" for f in fields(self))
        return f"{self.name}({args})"


@dataclass(frozen=True)
class Triangle(Surrogate):
    """max(0, 1 - |v|/width) / width: a hat of unit area (SpikingSSM uses width 1)."""

    width: float = 1.0
    name = "triangle"

    def derivative(self, v: torch.Tensor) -> torch.Tensor:
        return (1.0 - v.abs() / self.width).clamp_min(0.0) / self.width


@dataclass(frozen=True)
class Sigmoid(Surrogate):
    """d/dv sigmoid(alpha v) = alpha sigmoid(alpha v) (1 - sigmoid(alpha v))."""

    alpha: float = 4.0
    name = "sigmoid"

    def derivative(self, v: torch.Tensor) -> torch.Tensor:
        sig = torch.sigmoid(self.alpha * v)
        return self.alpha * sig * (1.0 - sig)


@dataclass(frozen=True)
class ATan(Surrogate):
    """d/dv [atan(pi/2 alpha v)/pi + 1/2] = (alpha/2) / (1 + (pi/2 alpha v)^2)."""

    alpha: float = 2.0
    name = "atan"

    def derivative(self, v: torch.Tensor) -> torch.Tensor:
        return (self.alpha / 2.0) / (1.0 + (math.pi / 2.0 * self.alpha * v) ** 2)


@dataclass(frozen=True)
class Rectangular(Surrogate):
    """1/width inside |v| < width/2, zero outside: a box of unit area."""

    width: float = 1.0
    name = "rectangular"

    def derivative(self, v: torch.Tensor) -> torch.Tensor:
        return (v.abs() < self.width / 2.0).to(v.dtype) / self.width


SURROGATES: dict[str, type[Surrogate]] = {
    cls.name: cls for cls in (Triangle, Sigmoid, ATan, Rectangular)
}

_SPEC = re.compile(r"^\s*([a-z_]+)\s*(?:\((.*)\))?\s*$")


def get_surrogate(spec: str | Surrogate) -> Surrogate:
    """A surrogate from its name and optional arguments, e.g. "triangle" or "sigmoid(alpha=5)"."""
    if isinstance(spec, Surrogate):
        return spec
    if not isinstance(spec, str):
        raise TypeError(f"expected a surrogate name or Surrogate, got {type(spec).__name__}")
    match = _SPEC.match(spec)
    if match is None or match.group(1) not in SURROGATES:
        raise ValueError(
            f"unknown surrogate {spec!r}: expected one of {sorted(SURROGATES)}, "
            "optionally with arguments, e.g. 'sigmoid(alpha=4)'"
        )
    cls = SURROGATES[match.group(1)]
    allowed = {f.name for f in fields(cls)}
    kwargs = {}
    for item in filter(None, (part.strip() for part in (match.group(2) or "").split(","))):
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or key not in allowed:
            raise ValueError(
                f"bad argument {item!r} for surrogate {cls.name!r}: expected key=value "
                f"with key in {sorted(allowed)}"
            )
        try:
            kwargs[key] = float(value)
        except ValueError:
            raise ValueError(f"surrogate argument {key} must be a number, got {value!r}") from None
        if kwargs[key] <= 0:
            raise ValueError(f"surrogate argument {key} must be positive, got {kwargs[key]}")
    return cls(**kwargs)


class _Spike(torch.autograd.Function):
    generate_vmap_rule = True  # elementwise, so torch.func.vmap batches it (ES populations)

    @staticmethod
    def forward(v: torch.Tensor, surrogate: Surrogate) -> torch.Tensor:
        return (v >= 0).to(v.dtype)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        v, surrogate = inputs
        ctx.save_for_backward(v)
        ctx.surrogate = surrogate

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        (v,) = ctx.saved_tensors
        return grad_out * ctx.surrogate.derivative(v), None


def spike(v: torch.Tensor, surrogate: str | Surrogate = "triangle") -> torch.Tensor:
    """Heaviside spikes H(v) (1 where v >= 0) with the surrogate's derivative as gradient."""
    return _Spike.apply(v, get_surrogate(surrogate))
