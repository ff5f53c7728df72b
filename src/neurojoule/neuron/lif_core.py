"""Leaky integrate-and-fire dynamics over a whole sequence, with explicit state.

Per neuron and step t (u is the state after reset, h the potential before it):
    multiplicative decay  h_t = tau * u_{t-1} + x_t              (SpikingSSM, tau = 0.125)
    input decay           h_t = u_{t-1} + (x_t - u_{t-1}) / tau  (Spikformer, spiking MLP, tau = 2)
    s_t = spike(h_t - v_th)
    hard reset            u_t = (1 - s_t) h_t + s_t v_reset
    soft reset            u_t = h_t - s_t v_th
Modes: "bptt" backpropagates through u across time; "sltt" detaches u_{t-1} at every step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from neurojoule.neuron.surrogate import Surrogate, get_surrogate, spike

DECAYS = ("multiplicative", "input")
RESETS = ("hard", "soft")
MODES = ("bptt", "sltt")
BACKENDS = ("auto", "numba", "torch")


@dataclass(frozen=True)
class LIFDynamics:
    """The fixed (non-tensor) settings of a LIF run."""

    decay: str = "multiplicative"
    reset: str = "hard"
    v_reset: float = 0.0
    detach_reset: bool = False
    mode: str = "bptt"
    surrogate: Surrogate | str = "triangle"

    def __post_init__(self):
        for name, allowed in (("decay", DECAYS), ("reset", RESETS), ("mode", MODES)):
            if getattr(self, name) not in allowed:
                raise ValueError(
                    f"LIF {name} must be one of {allowed}, got {getattr(self, name)!r}"
                )
        object.__setattr__(self, "surrogate", get_surrogate(self.surrogate))


def lif(
    x: torch.Tensor,
    *,
    time_dim: int,
    tau: float | torch.Tensor,
    v_threshold: float | torch.Tensor = 1.0,
    dynamics: LIFDynamics | None = None,
    state: torch.Tensor | None = None,
    backend: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run LIF neurons over the time axis `time_dim` of `x`; returns (spikes, final state).

    `tau` and `v_threshold` are floats or tensors that broadcast to one step's shape (x without
    its time axis); both may require grad. `state` is the potential after the previous chunk's
    last step (zeros when None), so a long sequence can be run in chunks.
    """
    run = _Run(x, time_dim, tau, v_threshold, dynamics, state, backend)
    if run.numba:
        spikes, u_last = _NumbaLIF.apply(run.x2d, run.u0, run.tau, run.vth, run.dynamics)
    else:
        spikes, u_last = _lif_torch(run.x2d, run.u0, run.tau, run.vth, run.dynamics)
    return run.restore(spikes), u_last.reshape(run.step_shape)


@torch.no_grad()
def lif_trace(
    x: torch.Tensor,
    *,
    time_dim: int,
    tau: float | torch.Tensor,
    v_threshold: float | torch.Tensor = 1.0,
    dynamics: LIFDynamics | None = None,
    state: torch.Tensor | None = None,
    backend: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Like `lif` without gradients, returning (spikes, potentials h before reset) per step."""
    run = _Run(x, time_dim, tau, v_threshold, dynamics, state, backend)
    if run.numba:
        h = torch.empty_like(run.x2d)
        spikes, _ = _run_forward(run.x2d.contiguous(), run.u0, run.tau, run.vth, run.dynamics, h=h)
    else:
        trace: list[torch.Tensor] = []
        spikes, _ = _lif_torch(run.x2d, run.u0, run.tau, run.vth, run.dynamics, trace)
        h = torch.stack(trace) if trace else torch.zeros_like(run.x2d)
    return run.restore(spikes), run.restore(h)


class _Run:
    """Checked arguments of one LIF call, flattened to time-major [T, N] with one value each."""

    def __init__(self, x, time_dim, tau, v_threshold, dynamics, state, backend):
        self.dynamics = dynamics or LIFDynamics()
        if not torch.is_floating_point(x):
            raise ValueError(f"LIF input must be a floating-point tensor, got dtype {x.dtype}")
        if not -x.dim() <= time_dim < x.dim():
            raise ValueError(
                f"time_dim {time_dim} is out of range for an input of shape {tuple(x.shape)}"
            )
        _check_tau(tau, self.dynamics.decay)
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
        self.tau = _per_neuron(tau, self.step_shape, x)
        self.vth = _per_neuron(v_threshold, self.step_shape, x)
        self.numba = _use_numba(backend, x)

    def restore(self, values2d: torch.Tensor) -> torch.Tensor:
        """[T, N] back to the input's shape and axis order."""
        return values2d.reshape(self.moved_shape).movedim(0, self.time_dim)


def _check_tau(tau, decay: str) -> None:
    if isinstance(tau, torch.Tensor):
        return
    if decay == "multiplicative" and not 0.0 <= tau <= 1.0:
        raise ValueError(f"multiplicative decay tau must lie in [0, 1], got {tau}")
    if decay == "input" and tau < 1.0:
        raise ValueError(f"input-decay tau must be >= 1, got {tau}")


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


def _lif_torch(x2d, u0, tau, vth, dyn: LIFDynamics, trace: list | None = None):
    """Plain per-step loop through autograd: the portable fallback (and any device). When
    `trace` is a list, the potentials before reset are appended to it."""
    u = u0
    spikes = []
    for x_t in x2d:
        u_prev = u.detach() if dyn.mode == "sltt" else u
        if dyn.decay == "multiplicative":
            h = tau * u_prev + x_t
        else:
            h = u_prev + (x_t - u_prev) / tau
        if trace is not None:
            trace.append(h)
        s = spike(h - vth, dyn.surrogate)
        s_reset = s.detach() if dyn.detach_reset else s
        if dyn.reset == "soft":
            u = h - s_reset * vth
        else:
            u = (1.0 - s_reset) * h + s_reset * dyn.v_reset
        spikes.append(s)
    if not spikes:
        return x2d.new_zeros(x2d.shape), u
    return torch.stack(spikes), u


class _NumbaLIF(torch.autograd.Function):
    """Compiled LIF. Forward keeps only the input and the state every `chunk` steps; backward
    recomputes each chunk's potentials from its checkpoint, newest chunk first, so memory stays
    O(T N / chunk) beyond the input and the work of each chunk stays in cache."""

    @staticmethod
    def forward(ctx, x2d, u0, tau, vth, dyn: LIFDynamics):
        x2d = x2d.detach().contiguous()
        steps, n = x2d.shape
        chunk = _chunk_steps(n)
        wants_grad = any(ctx.needs_input_grad[:4])
        u_ckpt = x2d.new_empty((-(-steps // chunk) if wants_grad else 0, n))
        s, u_last = _run_forward(x2d, u0, tau, vth, dyn, u_ckpt=u_ckpt, every=chunk)
        ctx.save_for_backward(x2d, u_ckpt, tau, vth)
        ctx.dyn, ctx.chunk = dyn, chunk
        return s, u_last

    @staticmethod
    def backward(ctx, grad_s, grad_u_last):
        from neurojoule.neuron import kernels

        x2d, u_ckpt, tau, vth = ctx.saved_tensors
        dyn, chunk = ctx.dyn, ctx.chunk
        steps, n = x2d.shape
        grad_s = torch.zeros_like(x2d) if grad_s is None else grad_s.contiguous()
        gu = x2d.new_zeros(n) if grad_u_last is None else grad_u_last.contiguous().clone()
        if dyn.decay == "multiplicative":
            coef_u, coef_x = tau, torch.ones_like(tau)
        else:
            coef_x = 1.0 / tau
            coef_u = 1.0 - coef_x
        grad_x = torch.empty_like(x2d)
        g_tau, g_vth = torch.zeros_like(tau), torch.zeros_like(vth)
        scalar = x2d.numpy().dtype.type
        h_buf = x2d.new_empty((chunk, n))
        for t0 in range(((steps - 1) // chunk) * chunk, -1, -chunk):
            t1 = min(t0 + chunk, steps)
            u_start = u_ckpt[t0 // chunk]
            h = h_buf[: t1 - t0]
            s, _ = _run_forward(x2d[t0:t1], u_start, tau, vth, dyn, h=h)
            sg = dyn.surrogate.derivative(h - vth).contiguous()
            kernels.lif_backward_chunk(
                sg.numpy(),
                grad_s[t0:t1].numpy(),
                h.numpy(),
                s.numpy(),
                u_start.numpy(),
                coef_u.detach().contiguous().numpy(),
                coef_x.detach().contiguous().numpy(),
                vth.detach().numpy(),
                scalar(dyn.v_reset),
                _decay_code(dyn),
                dyn.reset == "soft",
                scalar(0.0 if dyn.detach_reset else 1.0),
                scalar(0.0 if dyn.mode == "sltt" else 1.0),
                kernels.block_size(n, _sync_threads()),
                grad_x[t0:t1].numpy(),
                gu.numpy(),
                g_tau.numpy(),
                g_vth.numpy(),
            )
        needed = ctx.needs_input_grad
        grads = (grad_x, gu, g_tau, g_vth)
        return tuple(g if needed[i] else None for i, g in enumerate(grads)) + (None,)


_CHUNK_ELEMENTS = 1 << 18


def _chunk_steps(n: int) -> int:
    """Steps per backward chunk: about a megabyte of float32 potentials, so it stays in cache."""
    return max(1, _CHUNK_ELEMENTS // max(n, 1))


def _decay_code(dyn: LIFDynamics) -> int:
    from neurojoule.neuron import kernels

    return kernels.MULTIPLICATIVE if dyn.decay == "multiplicative" else kernels.INPUT


def _run_forward(x2d, u0, tau, vth, dyn: LIFDynamics, h=None, u_ckpt=None, every=1):
    """Call the compiled forward on contiguous [T, N] input; returns (spikes, final state)."""
    from neurojoule.neuron import kernels

    steps, n = x2d.shape
    s = torch.empty_like(x2d)
    u_last = torch.empty_like(u0)
    nothing = x2d.new_empty((0, n))
    kernels.lif_forward(
        x2d.numpy(),
        u0.detach().contiguous().numpy(),
        tau.detach().numpy(),
        vth.detach().numpy(),
        x2d.numpy().dtype.type(dyn.v_reset),
        _decay_code(dyn),
        dyn.reset == "soft",
        kernels.block_size(n, _sync_threads()),
        s.numpy(),
        u_last.numpy(),
        (nothing if h is None else h).numpy(),
        (nothing if u_ckpt is None else u_ckpt).numpy(),
        every,
    )
    return s, u_last


def _sync_threads() -> int:
    """Give numba the thread count torch was told to use (tests and benchmarks set it)."""
    import numba

    threads = max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS))
    numba.set_num_threads(threads)
    return threads


class SpikingNeuron(nn.Module):
    """Marker base class of neuron layers: energy accounting records their firing rates."""


class LIF(SpikingNeuron):
    """A layer of LIF neurons over a sequence; threshold and decay optionally learnable.

    The threshold is stored as ln(v_th), one per channel (`channels` neurons along
    `channel_dim` of the input) or one shared scalar. A learnable decay is stored as a logit:
    tau = sigmoid(w) for multiplicative decay, 1/tau = sigmoid(w) for input decay (PLIF).
    """

    def __init__(
        self,
        *,
        time_dim: int,
        tau: float = 0.125,
        decay: str = "multiplicative",
        v_threshold: float = 1.0,
        v_reset: float = 0.0,
        reset: str = "hard",
        detach_reset: bool = False,
        surrogate: str | Surrogate = "triangle",
        mode: str = "bptt",
        channels: int | None = None,
        channel_dim: int | None = None,
        learn_threshold: bool = False,
        learn_decay: bool = False,
        backend: str = "auto",
    ):
        super().__init__()
        self.dynamics = LIFDynamics(decay, reset, v_reset, detach_reset, mode, surrogate)
        _check_tau(tau, decay)
        if v_threshold <= 0:
            raise ValueError(f"v_threshold must be positive, got {v_threshold}")
        if (channels is None) != (channel_dim is None):
            raise ValueError(
                "give both channels and channel_dim for per-channel parameters, or neither"
            )
        self.time_dim, self.channels, self.channel_dim, self.backend = (
            time_dim,
            channels,
            channel_dim,
            backend,
        )
        shape = (channels,) if channels else ()
        # Fixed values stay plain floats, so that e.g. tau = 0.125 is exactly 0.125.
        self._v_threshold, self._tau = float(v_threshold), float(tau)
        if learn_threshold:
            self.ln_vth = nn.Parameter(torch.full(shape, math.log(v_threshold)))
        if learn_decay:
            self.decay_logit = nn.Parameter(torch.full(shape, _decay_logit(tau, decay)))

    @property
    def v_threshold(self) -> float | torch.Tensor:
        return self.ln_vth.exp() if hasattr(self, "ln_vth") else self._v_threshold

    @property
    def tau(self) -> float | torch.Tensor:
        if not hasattr(self, "decay_logit"):
            return self._tau
        rate = torch.sigmoid(self.decay_logit)
        return rate if self.dynamics.decay == "multiplicative" else 1.0 / rate

    def forward(
        self, x: torch.Tensor, state: torch.Tensor | None = None, return_state: bool = False
    ):
        spikes, state = lif(
            x,
            time_dim=self.time_dim,
            tau=self._per_channel(self.tau, x),
            v_threshold=self._per_channel(self.v_threshold, x),
            dynamics=self.dynamics,
            state=state,
            backend=self.backend,
        )
        return (spikes, state) if return_state else spikes

    def _per_channel(self, value: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Shape a (channels,) tensor to broadcast over one step of x (x without time)."""
        if self.channels is None or not isinstance(value, torch.Tensor):
            return value
        dims = list(range(x.dim()))
        time_dim = dims[self.time_dim]
        channel_dim = dims[self.channel_dim]
        if channel_dim == time_dim or x.shape[channel_dim] != self.channels:
            raise ValueError(
                f"LIF expects {self.channels} channels along dim {self.channel_dim} of its input, "
                f"got shape {tuple(x.shape)}"
            )
        step_dims = x.dim() - 1
        position = channel_dim - (1 if channel_dim > time_dim else 0)
        return value.reshape([-1 if d == position else 1 for d in range(step_dims)])

    def extra_repr(self) -> str:
        d = self.dynamics
        return (
            f"time_dim={self.time_dim}, decay={d.decay}, reset={d.reset}, mode={d.mode}, "
            f"surrogate={d.surrogate}, channels={self.channels}"
        )


def _decay_logit(tau: float, decay: str) -> float:
    rate = tau if decay == "multiplicative" else 1.0 / tau
    rate = min(max(rate, 1e-6), 1 - 1e-6)
    return math.log(rate / (1.0 - rate))
