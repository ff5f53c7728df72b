"""Leaky integrate-and-fire dynamics: the per-step specification and runs over a time axis.

One step of one neuron, u being the state (the potential after the previous step's reset) and h
the potential before this step's reset:
    multiplicative decay   h = decay * u + x           decay: a factor in [0, 1] (SpikingSSM: 0.125)
    input decay            h = u + (x - u) / tau       tau: a time constant >= 1 (Spikformer: 2)
    s = spike(h - v_threshold)                         1 where h >= v_threshold
    hard reset             u' = (1 - s) h + s v_reset
    soft reset             u' = h - s v_threshold
Which of `decay` and `tau` a LIFParameters holds decides the decay form. `detach_reset` stops
the gradient through s in the reset; `detach_state` (SLTT) stops it through u from one step to
the next.

`lif_step` is the specification. `lif` runs it along a time axis: the torch backend is a plain
loop of `lif_step`; the CPU backend runs compiled kernels (numba_lif.py, kernels.py), and on
CUDA the Triton backend runs fused kernels (triton_lif.py, with the optional extra
`neurojoule[gpu]`); the tests compare both with that loop, spikes and state exactly,
gradients to rounding.

Non-finite input (IEEE arithmetic, the same on every backend):
- NaN never reaches the threshold: no spike, and the potential becomes NaN. A NaN potential
  never spikes, so it is never reset: the neuron stays silent for the rest of the sequence and
  the final state is NaN (a next chunk run from it stays silent too).
- +Inf always spikes. A hard reset then restores v_reset, and the neuron goes on as after any
  spike. A soft reset subtracts a finite threshold and leaves +Inf: under multiplicative decay
  > 0 the neuron then fires at every step; under input decay the next potential is
  +Inf - Inf = NaN, silent from then on.
- -Inf never spikes; the neuron stays silent for the rest of the sequence (its state stays
  -Inf, or becomes NaN where the next update forms -Inf + Inf: input decay, or decay 0).
Gradients through non-finite values carry no meaning (NaN or 0). The models reject non-finite
input at their boundary, before it reaches a neuron.
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass, replace
from typing import NamedTuple

import torch

from neurojoule.neuron.surrogate import Surrogate, get_surrogate, spike

DECAY_FORMS = ("multiplicative", "input")
RESETS = ("hard", "soft")
BACKENDS = ("auto", "numba", "torch", "triton")


@dataclass(frozen=True)
class LIFParameters:
    """What a LIF step needs besides its input and state.

    Give exactly one of `decay` (multiplicative decay, a factor in [0, 1]) or `tau` (input
    decay, a time constant >= 1). `decay`, `tau` and `v_threshold` are floats or tensors that
    broadcast against one step of the input, and may require grad; float values are checked.
    """

    decay: float | torch.Tensor | None = None
    tau: float | torch.Tensor | None = None
    v_threshold: float | torch.Tensor = 1.0
    v_reset: float = 0.0
    reset: str = "hard"
    detach_reset: bool = False
    detach_state: bool = False  # SLTT
    surrogate: Surrogate | str = "triangle"

    def __post_init__(self):
        if (self.decay is None) == (self.tau is None):
            raise ValueError(
                "LIF needs exactly one of decay (multiplicative, a factor in [0, 1]) and tau "
                f"(input decay, a time constant >= 1), got decay={self.decay!r}, tau={self.tau!r}"
            )
        _check_number("decay", self.decay, lambda v: 0.0 <= v <= 1.0, "in [0, 1]")
        _check_number("tau", self.tau, lambda v: v >= 1.0, ">= 1")
        _check_number("v_threshold", self.v_threshold, lambda v: v > 0.0, "> 0")
        if self.reset not in RESETS:
            raise ValueError(f"LIF reset must be one of {RESETS}, got {self.reset!r}")
        object.__setattr__(self, "surrogate", get_surrogate(self.surrogate))

    @property
    def decay_form(self) -> str:
        return "multiplicative" if self.tau is None else "input"

    @property
    def leak(self) -> float | torch.Tensor:
        """The decay factor or the time constant, whichever the decay form uses."""
        return self.decay if self.tau is None else self.tau


def _check_number(name: str, value, valid, expected: str) -> None:
    if value is None or isinstance(value, torch.Tensor):
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not valid(value):
        raise ValueError(f"LIF {name} must be a number {expected}, got {value!r}")


def membrane_potential(x: torch.Tensor, u: torch.Tensor, p: LIFParameters) -> torch.Tensor:
    """h, the potential before reset: the state u decayed, with the input x added."""
    if p.detach_state:
        u = u.detach()
    if p.tau is None:
        return p.decay * u + x
    return u + (x - u) / p.tau


def lif_step(
    x: torch.Tensor, u: torch.Tensor, p: LIFParameters
) -> tuple[torch.Tensor, torch.Tensor]:
    """One LIF step, the specification of every backend: (input, state) -> (spikes, new state).

    `x` is one step's input and `u` the state, of the same shape; pure torch, differentiable.
    """
    h = membrane_potential(x, u, p)
    s = spike(h - p.v_threshold, p.surrogate)
    r = s.detach() if p.detach_reset else s
    if p.reset == "soft":
        return s, h - r * p.v_threshold
    # h capped below +Inf: 0 * Inf is NaN, and a neuron that fired at +Inf resets like any other
    return s, (1.0 - r) * h.clamp(max=torch.finfo(h.dtype).max) + r * p.v_reset


def lif(
    x: torch.Tensor,
    params: LIFParameters,
    *,
    time_dim: int,
    state: torch.Tensor | None = None,
    backend: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run LIF neurons along the time axis `time_dim` of `x`; returns (spikes, final state).

    `state` is the potential after the previous chunk's last step (zeros when None), so a long
    sequence can run in chunks. `backend`: "numba" (compiled, CPU float32/float64), "triton"
    (fused kernels, CUDA float32/float64, needs triton), "torch" (a loop of `lif_step`, any
    device) or "auto" (numba or triton where it can run, else torch). NaN and -Inf inputs
    silence a neuron for the rest of the sequence, +Inf makes it spike (see the module
    docstring for the details, which every backend shares).
    """
    run = _Run(x, params, time_dim, state, backend)
    compiled = run.compiled()
    if compiled is not None:
        p = run.params
        spikes, u_last = compiled.lif_2d(run.x2d, run.u0, p.leak, p.v_threshold, _settings(p))
    else:
        spikes, u_last = _lif_torch(run.x2d, run.u0, run.params)
    return run.restore(spikes), u_last.reshape(run.step_shape)


@torch.no_grad()
def lif_trace(
    x: torch.Tensor,
    params: LIFParameters,
    *,
    time_dim: int,
    state: torch.Tensor | None = None,
    backend: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Like `lif` without gradients, returning (spikes, potentials h before reset) per step."""
    run = _Run(x, params, time_dim, state, backend)
    compiled = run.compiled()
    if compiled is not None:
        p = run.params
        spikes, h = compiled.trace_2d(run.x2d, run.u0, p.leak, p.v_threshold, _settings(p))
    else:
        trace: list[torch.Tensor] = []
        spikes, _ = _lif_torch(run.x2d, run.u0, run.params, trace)
        h = torch.stack(trace)
    return run.restore(spikes), run.restore(h)


def check_time_steps(x: torch.Tensor, time_dim: int) -> None:
    """A ValueError unless `x` has a floating dtype and at least one step along `time_dim`."""
    if not torch.is_floating_point(x):
        raise ValueError(f"LIF input must be a floating-point tensor, got dtype {x.dtype}")
    if not -x.dim() <= time_dim < x.dim():
        raise ValueError(
            f"time_dim {time_dim} is out of range for an input of shape {tuple(x.shape)}"
        )
    if x.shape[time_dim] == 0:
        raise ValueError(
            f"LIF input has 0 time steps along dim {time_dim}; expected at least 1 "
            f"(input shape {tuple(x.shape)})"
        )


class _Run:
    """Checked arguments of one LIF call, flattened to time-major [T, N] with one value each."""

    def __init__(self, x, params, time_dim, state, backend):
        if not isinstance(params, LIFParameters):
            raise ValueError(f"expected LIFParameters, got {type(params).__name__}")
        check_time_steps(x, time_dim)
        if backend not in BACKENDS:
            raise ValueError(f"LIF backend must be one of {BACKENDS}, got {backend!r}")
        self.time_dim = time_dim
        self.moved_shape = x.movedim(time_dim, 0).shape
        self.step_shape = self.moved_shape[1:]
        self.x2d = x.movedim(time_dim, 0).reshape(self.moved_shape[0], -1)
        if state is None:
            state = x.new_zeros(self.step_shape)
        elif state.shape != self.step_shape:
            raise ValueError(
                f"LIF state must have one step's shape {tuple(self.step_shape)}, "
                f"got {tuple(state.shape)}"
            )
        self.u0 = state.reshape(-1).to(x.dtype)
        leak = _per_neuron(params.leak, self.step_shape, x)
        leaks = {"decay": leak} if params.tau is None else {"tau": leak}
        vth = _per_neuron(params.v_threshold, self.step_shape, x)
        self.params = replace(params, **leaks, v_threshold=vth)
        self.triton = _use_triton(backend, x)
        self.numba = not self.triton and _use_numba(backend, x)

    def compiled(self):
        """The module of the compiled kernels this call runs (numba_lif or triton_lif, each
        with lif_2d and trace_2d), or None for the torch loop."""
        if self.triton:
            from neurojoule.neuron import triton_lif

            return triton_lif
        if self.numba:
            from neurojoule.neuron import numba_lif

            return numba_lif
        return None

    def restore(self, values2d: torch.Tensor) -> torch.Tensor:
        """[T, N] back to the input's shape and axis order."""
        return values2d.reshape(self.moved_shape).movedim(0, self.time_dim)


def _per_neuron(value, step_shape: torch.Size, x: torch.Tensor) -> torch.Tensor:
    """A float or broadcastable tensor as one contiguous value per neuron, keeping autograd."""
    if not isinstance(value, torch.Tensor):
        return torch.full((math.prod(step_shape),), float(value), dtype=x.dtype, device=x.device)
    try:
        full = value.to(x.dtype).expand(step_shape)
    except RuntimeError:
        raise ValueError(
            f"LIF parameter of shape {tuple(value.shape)} does not broadcast to one step's "
            f"shape {tuple(step_shape)}"
        ) from None
    return full.reshape(-1).contiguous()


def _use_numba(backend: str, x: torch.Tensor) -> bool:
    numba_ok = x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64)
    if backend == "numba" and not numba_ok:
        raise ValueError(
            f"the numba LIF backend needs a float32/float64 CPU tensor, got {x.dtype} on {x.device}"
        )
    return backend == "numba" or (backend == "auto" and numba_ok)


def triton_available() -> bool:
    """Whether triton is installed (without importing it)."""
    try:
        return importlib.util.find_spec("triton") is not None
    except (ImportError, ValueError):  # a broken or blocked install
        return False


def _use_triton(backend: str, x: torch.Tensor) -> bool:
    if backend == "triton":
        if not triton_available():
            raise ValueError("the triton LIF backend needs triton: pip install 'neurojoule[gpu]'")
        from neurojoule.neuron import triton_lif

        triton_lif.check_input(x)
        return True
    return (
        backend == "auto"
        and x.device.type == "cuda"
        and x.dtype in (torch.float32, torch.float64)
        and triton_available()
    )


def _lif_torch(x2d, u0, p: LIFParameters, trace: list | None = None):
    """The torch backend: `lif_step` over the rows of [T, N] through autograd. When `trace` is
    a list, the potentials before reset are appended to it."""
    u = u0
    spikes = []
    for x_t in x2d:
        if trace is not None:
            trace.append(membrane_potential(x_t, u, p))
        s, u = lif_step(x_t, u, p)
        spikes.append(s)
    return torch.stack(spikes), u


class _Settings(NamedTuple):
    """The non-tensor part of LIFParameters, as the compiled kernels take it."""

    input_decay: bool
    soft_reset: bool
    v_reset: float
    detach_reset: bool
    detach_state: bool
    surrogate: Surrogate


def _settings(p: LIFParameters) -> _Settings:
    return _Settings(
        p.tau is not None, p.reset == "soft", p.v_reset, p.detach_reset, p.detach_state, p.surrogate
    )
