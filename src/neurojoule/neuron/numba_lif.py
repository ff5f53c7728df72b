"""The LIF on CPUs: autograd Functions around the compiled numba kernels (kernels.py).

lif_core.lif runs `lif_2d` (and lif_trace runs `trace_2d`) on [T, N] values for float32 and
float64 CPU tensors. What each piece stores and how the backward walks the sequence is in
docs/neurons.md. The kernels take the number of threads from torch, capped by the cores this
process may use and the cores other processes leave free.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import astuple
from pathlib import Path

import numba
import torch

from neurojoule.neuron import kernels
from neurojoule.neuron.population import inference_function
from neurojoule.neuron.surrogate import SURROGATES, Surrogate


def lif_2d(x2d, u0, leak, vth, settings):
    """(spikes [T, N], final state [N]); `settings`: lif_core._Settings."""
    function = _NumbaLIF if torch.is_grad_enabled() else _NumbaLIFInference
    return function.apply(x2d, u0, leak, vth, settings)


@torch.no_grad()
def trace_2d(x2d, u0, leak, vth, settings):
    """(spikes, potentials before reset), both [T, N] and laid out like x2d."""
    x2d = _kernel_layout(x2d)
    h = torch.empty_like(x2d)
    spikes, _ = _run_forward(x2d, u0, leak, vth, settings, h=h)
    return spikes, h


class _NumbaLIF(torch.autograd.Function):
    """Compiled LIF. Forward keeps only the input and the state every `chunk` steps; backward
    recomputes each chunk's potentials from its checkpoint, newest chunk first, so memory stays
    O(T N / chunk) beyond the input and the work of each chunk stays in cache."""

    @staticmethod
    def forward(ctx, x2d, u0, leak, vth, settings):
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


def _forward_without_grad(x2d, u0, leak, vth, settings):
    return _run_forward(_kernel_layout(x2d), u0, leak.contiguous(), vth.contiguous(), settings)


# the compiled forward for calls without gradients; under torch.func.vmap one kernel call
# runs every member of a population (population.py)
_NumbaLIFInference = inference_function(_forward_without_grad, "_NumbaLIFInference")


_CHUNK_ELEMENTS = 1 << 18


def _chunk_steps(n: int) -> int:
    """Steps per backward chunk: about a megabyte of float32 potentials, so it stays in cache."""
    return max(1, _CHUNK_ELEMENTS // max(n, 1))


def _form_code(settings) -> int:
    return kernels.INPUT if settings.input_decay else kernels.MULTIPLICATIVE


def _built_in_surrogate(surrogate: Surrogate) -> tuple[int, float] | None:
    """(code, parameter) of a surrogate the backward kernel evaluates itself; None for any
    other (a subclass, say), whose derivative torch computes."""
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


def _run_forward(x2d, u0, leak, vth, settings, h=None, u_ckpt=None, every=1):
    """Call the compiled forward on [T, N] input in a _kernel_layout; returns (spikes, final
    state), the spikes laid out like the input."""
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
