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
loop of `lif_step`; the CPU backend runs compiled kernels (kernels.py), and on CUDA the Triton
backend runs fused kernels (triton_lif.py, with the optional extra `neurojoule[gpu]`); the tests
compare both with that loop, spikes and state exactly, gradients to rounding.

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
import os
import time
from dataclasses import astuple, dataclass, replace
from pathlib import Path
from typing import NamedTuple

import torch

from neurojoule.neuron.surrogate import SURROGATES, Surrogate, get_surrogate, spike

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
    if run.triton:
        from neurojoule.neuron import triton_lif

        p = run.params
        spikes, u_last = triton_lif.lif_2d(run.x2d, run.u0, p.leak, p.v_threshold, _settings(p))
    elif run.numba:
        p = run.params
        compiled = _NumbaLIF if torch.is_grad_enabled() else _NumbaLIFInference
        spikes, u_last = compiled.apply(run.x2d, run.u0, p.leak, p.v_threshold, _settings(p))
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
    if run.triton:
        from neurojoule.neuron import triton_lif

        p = run.params
        spikes, h = triton_lif.trace_2d(run.x2d, run.u0, p.leak, p.v_threshold, _settings(p))
    elif run.numba:
        h = torch.empty_like(run.x2d)
        p = run.params
        spikes, _ = _run_forward(
            run.x2d.contiguous(), run.u0, p.leak, p.v_threshold, _settings(p), h=h
        )
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


class _NumbaLIF(torch.autograd.Function):
    """Compiled LIF. Forward keeps only the input and the state every `chunk` steps; backward
    recomputes each chunk's potentials from its checkpoint, newest chunk first, so memory stays
    O(T N / chunk) beyond the input and the work of each chunk stays in cache."""

    @staticmethod
    def forward(ctx, x2d, u0, leak, vth, settings: _Settings):
        x2d = _kernel_layout(x2d.detach())
        steps, n = x2d.shape
        chunk = _chunk_steps(n)
        wants_grad = any(ctx.needs_input_grad[:4])
        u_ckpt = x2d.new_empty((-(-steps // chunk) if wants_grad else 0, n))
        s, u_last = _run_forward(x2d, u0, leak, vth, settings, u_ckpt=u_ckpt, every=chunk)
        ctx.save_for_backward(x2d, u_ckpt, leak, vth)
        ctx.settings, ctx.chunk = settings, chunk
        return s, u_last

    @staticmethod
    def backward(ctx, grad_s, grad_u_last):
        from neurojoule.neuron import kernels

        x2d, u_ckpt, leak, vth = ctx.saved_tensors
        settings = ctx.settings
        n = x2d.shape[1]
        grad_s = torch.zeros_like(x2d) if grad_s is None else _kernel_layout(grad_s)
        gu = x2d.new_zeros(n) if grad_u_last is None else grad_u_last.contiguous().clone()
        if settings.input_decay:  # dh/du and dh/dx per neuron
            coef_x = 1.0 / leak
            coef_u = 1.0 - coef_x
        else:
            coef_u, coef_x = leak, torch.ones_like(leak)
        grad_x = torch.empty_like(x2d)
        g_leak, g_vth = torch.zeros_like(leak), torch.zeros_like(vth)
        scalar = x2d.numpy().dtype.type
        common = (  # what both backward kernels take after the neuron's parameters
            coef_u.detach().contiguous().numpy(),
            coef_x.detach().contiguous().numpy(),
            scalar(settings.v_reset),
            _form_code(settings),
            settings.soft_reset,
            scalar(0.0 if settings.detach_reset else 1.0),
            scalar(0.0 if settings.detach_state else 1.0),
        )
        block = _block(x2d)
        grads = (grad_x, gu, g_leak, g_vth)
        built_in = _built_in_surrogate(settings.surrogate)
        if built_in is not None:
            code, parameter = built_in
            p1, p2 = kernels.surrogate_parameters(code, parameter)
            kernels.lif_backward(
                x2d.numpy(), u_ckpt.numpy(), ctx.chunk, leak.detach().numpy(),
                vth.detach().numpy(), *common, code, scalar(p1), scalar(p2), block, grad_s.numpy(),
                *(g.numpy() for g in grads),
            )  # fmt: skip
        else:
            _backward_by_chunks(
                x2d, u_ckpt, ctx.chunk, leak, vth, settings, common, block, grad_s, grads
            )
        needed = ctx.needs_input_grad
        return tuple(g if needed[i] else None for i, g in enumerate(grads)) + (None,)


def _backward_by_chunks(x2d, u_ckpt, chunk, leak, vth, settings, common, block, grad_s, grads):
    """The backward for a surrogate the kernel does not know: chunk by chunk, newest first,
    torch computing the surrogate derivative of each recomputed chunk; fills `grads`."""
    from neurojoule.neuron import kernels

    steps, n = x2d.shape
    coef_u, coef_x, *flags = common
    grad_x, gu, g_leak, g_vth = grads
    h_buf = x2d.new_empty((chunk, n))
    for t0 in range(((steps - 1) // chunk) * chunk, -1, -chunk):
        t1 = min(t0 + chunk, steps)
        u_start = u_ckpt[t0 // chunk]
        h = h_buf[: t1 - t0]
        s, _ = _run_forward(x2d[t0:t1], u_start, leak, vth, settings, h=h)
        sg = settings.surrogate.derivative(h - vth).contiguous()
        kernels.lif_backward_chunk(
            sg.numpy(), grad_s[t0:t1].numpy(), h.numpy(), s.numpy(), u_start.numpy(),
            coef_u, coef_x, vth.detach().numpy(), *flags, block,
            grad_x[t0:t1].numpy(), gu.numpy(), g_leak.numpy(), g_vth.numpy(),
        )  # fmt: skip


class _NumbaLIFInference(torch.autograd.Function):
    """The compiled forward for calls without gradients. Under torch.func.vmap (a population
    of networks run as one, search.es) it folds the vmapped dimension into the neurons, so one
    kernel call runs every member: LIF neurons are independent of each other."""

    @staticmethod
    def forward(x2d, u0, leak, vth, settings: _Settings):
        return _run_forward(_kernel_layout(x2d), u0, leak.contiguous(), vth.contiguous(), settings)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        pass

    @staticmethod
    def backward(ctx, *grads):
        raise RuntimeError("the LIF inference kernel has no backward; call lif with grad enabled")

    @staticmethod
    def vmap(info, in_dims, x2d, u0, leak, vth, settings):
        def members_first(value, dim):
            return value.movedim(dim, 0) if dim is not None else value.expand(size, *value.shape)

        size = info.batch_size
        x = members_first(x2d, in_dims[0])  # [members, T, N]
        steps, n = x.shape[1:]
        folded = x.transpose(0, 1).reshape(steps, size * n)
        state, leaks, thresholds = (
            members_first(value, dim).reshape(-1)
            for value, dim in zip((u0, leak, vth), in_dims[1:4], strict=True)
        )
        s, u_last = _NumbaLIFInference.apply(folded, state, leaks, thresholds, settings)
        return (s.reshape(steps, size, n), u_last.reshape(size, n)), (1, 0)


_CHUNK_ELEMENTS = 1 << 18


def _chunk_steps(n: int) -> int:
    """Steps per backward chunk: about a megabyte of float32 potentials, so it stays in cache."""
    return max(1, _CHUNK_ELEMENTS // max(n, 1))


def _form_code(settings: _Settings) -> int:
    from neurojoule.neuron import kernels

    return kernels.INPUT if settings.input_decay else kernels.MULTIPLICATIVE


def _built_in_surrogate(surrogate: Surrogate) -> tuple[int, float] | None:
    """(code, parameter) of a surrogate the backward kernel evaluates itself; None for any
    other (a subclass, say), whose derivative torch computes."""
    from neurojoule.neuron import kernels

    code = kernels.SURROGATE_CODES.get(surrogate.name)
    if code is None or type(surrogate) is not SURROGATES[surrogate.name]:
        return None
    (parameter,) = astuple(surrogate)
    return code, parameter


def _kernel_layout(values2d: torch.Tensor) -> torch.Tensor:
    """[T, N] values as the kernels take them: time-major, or neuron-major ([N, T] memory,
    which a time-last input such as SpikingSSM's [B, H, L] flattens to without a copy). The
    kernels run either in place; spikes and gradients come out in the input's layout, so no
    transposed copy is made on the way in or out. Any other strides are copied."""
    if values2d.is_contiguous() or values2d.t().is_contiguous():
        return values2d
    return values2d.contiguous()


def _run_forward(x2d, u0, leak, vth, settings: _Settings, h=None, u_ckpt=None, every=1):
    """Call the compiled forward on [T, N] input in a _kernel_layout; returns (spikes, final
    state), the spikes laid out like the input."""
    from neurojoule.neuron import kernels

    steps, n = x2d.shape
    s = torch.empty_like(x2d)
    u_last = torch.empty_like(u0)
    nothing = x2d.new_empty((0, n))
    kernels.lif_forward(
        x2d.numpy(),
        u0.detach().contiguous().numpy(),
        leak.detach().numpy(),
        vth.detach().numpy(),
        x2d.numpy().dtype.type(settings.v_reset),
        _form_code(settings),
        settings.soft_reset,
        _block(x2d),
        s.numpy(),
        u_last.numpy(),
        (nothing if h is None else h).numpy(),
        (nothing if u_ckpt is None else u_ckpt).numpy(),
        every,
    )
    return s, u_last


def _sync_threads() -> int:
    """Give numba the thread count torch was told to use (tests and benchmarks set it), at
    most the cores this process may run on (a container or `taskset` may allow fewer than
    the machine has) that other processes leave free (a DataLoader worker, another job): a
    thread without a core of its own holds up every barrier of the kernel."""
    import numba

    wanted = torch.get_num_threads()
    cores = _usable_cores()
    free = max(1, cores - _runnable_elsewhere())
    threads = max(1, min(wanted, numba.config.NUMBA_NUM_THREADS, cores, free))
    numba.set_num_threads(threads)
    if torch.get_num_threads() != wanted:
        # numba's first call starts its OpenMP pool with NUMBA_NUM_THREADS, which is also
        # torch's OpenMP thread count (one libgomp): give torch its own back
        torch.set_num_threads(wanted)
    return threads


def _block(x2d: torch.Tensor) -> int:
    """Neurons per kernel block. Time-major memory: one block per thread, whose long rows of
    neighbouring neurons vectorise. Neuron-major: a few neurons at a time, each reading its
    own row of steps in order, so the block's rows stay in cache and its neurons' independent
    recurrences overlap."""
    from neurojoule.neuron import kernels

    threads = _sync_threads()
    if x2d.shape[0] > 1 and x2d.stride(0) == 1:
        return kernels.NEURON_MAJOR_BLOCK
    return kernels.block_size(x2d.shape[1], threads)


_LOAD_SAMPLE_SECONDS = 0.25  # how long one reading of the machine's load is used
_load_sample = [-math.inf, 0]  # [when, threads of other processes ready to run]


def _runnable_elsewhere() -> int:
    """Threads of other processes running or waiting for a core, read from /proc at most
    every _LOAD_SAMPLE_SECONDS (0 where /proc cannot tell: not Linux)."""
    now = time.monotonic()
    if now - _load_sample[0] >= _LOAD_SAMPLE_SECONDS:
        _load_sample[:] = [now, _count_runnable_elsewhere()]
    return _load_sample[1]


def _count_runnable_elsewhere() -> int:
    try:
        # the 4th field of /proc/loadavg: runnable threads / all threads, machine-wide
        runnable = int(Path("/proc/loadavg").read_text().split()[3].split("/")[0])
        own = sum(_is_runnable(task) for task in Path("/proc/self/task").iterdir())
    except (OSError, ValueError, IndexError):
        return 0
    return max(0, runnable - own)


def _is_runnable(task: Path) -> bool:
    try:
        stat = (task / "stat").read_text()
    except OSError:  # the thread ended meanwhile
        return False
    return stat[stat.rindex(")") + 2 :].startswith("R")


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # no affinity on this platform (macOS)
        return os.cpu_count() or 1
