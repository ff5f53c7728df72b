"""The exact LIF fused into Triton kernels for CUDA GPUs: forward and hand-written backward.

Same equations as lif_core.lif_step (the specification) and the CPU kernels (kernels.py): both
decay forms, hard and soft reset, detach_reset, BPTT and SLTT. Layout: time-major [T, N]
contiguous. One program owns a block of neighbouring neurons and runs the recurrence along
time with the state in registers; the neurons of a step are contiguous, so every load and
store of a step is coalesced. Each program keeps the loads of the next 4 steps in
flight (they do not depend on the state), so a long sequence over few neurons is not bound by
one memory latency per step.

What the forward keeps for the backward: the potentials before reset h [T, N] and the initial
state [N], nothing else -- not the input. The CPU kernel keeps the input [T, N] and a state
checkpoint every `chunk` steps; h takes the place of the input (the same T x N, minus the
checkpoints) and makes a recompute unnecessary: the spikes are h >= v_th again, the state
before step t follows from h and the spike of step t - 1. The backward then runs one pass in
reverse time, with the gradient reaching the state in registers.

The surrogate derivative is computed in the kernel for the four surrogates of surrogate.py
(the same formulas); any other Surrogate subclass has its `derivative` evaluated by torch on
h - v_th, [T, N] for the duration of the backward, and passed in.

Bit-exactness with the torch loop on the same device: the kernels are compiled without fused
multiply-add (torch runs each operation as its own kernel), and the forward divides with IEEE
rounding (Triton's float32 `/` is approximate; the backward's gradients agree to rounding).

Triton is an optional extra (`pip install neurojoule[gpu]`); this module imports it and is
only imported when the "triton" backend runs. The kernels are built at first use, for the value
of TRITON_INTERPRET at that time: set to 1, they run in Triton's interpreter on CPU tensors,
which is how the tests check them on machines without a GPU. They call only Triton builtins,
none of the library's own @triton.jit functions (tl.zeros, tl.sigmoid, ...), which are built
when triton is imported: so the interpreter can be switched on after triton was imported
normally, and switched off again, within one process.
"""

import contextlib
import math
import os
from functools import cache

import torch
import triton
import triton.language as tl

from neurojoule.neuron.population import inference_function
from neurojoule.neuron.surrogate import ATan, Rectangular, Sigmoid, Triangle

DTYPES = (torch.float32, torch.float64)
# every launch: no fused multiply-add, as torch runs each operation of the loop on its own
COMPILE_OPTIONS = {"enable_fp_fusion": False}
# surrogate codes of the backward kernel; 0: derivative computed by torch and passed in
SURROGATE_CODES = {Triangle: 1, Sigmoid: 2, ATan: 3, Rectangular: 4}


def _forward_kernel(
    x_ptr,
    u0_ptr,
    leak_ptr,
    vth_ptr,
    consts_ptr,
    s_ptr,
    h_ptr,
    u_last_ptr,
    steps,
    n,
    INPUT_DECAY: tl.constexpr,
    SOFT_RESET: tl.constexpr,
    STORE_H: tl.constexpr,
    F64: tl.constexpr,
    BLOCK: tl.constexpr,
):
    """Spikes s [T, N], final state u_last [N] and, with STORE_H, h [T, N]."""
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    live = offs < n
    n64 = n.to(tl.int64)
    u = tl.load(u0_ptr + offs, mask=live, other=0.0)
    leak = tl.load(leak_ptr + offs, mask=live, other=1.0)
    vth = tl.load(vth_ptr + offs, mask=live, other=1.0)
    v_reset = tl.load(consts_ptr)
    total = steps * n64  # a neuron's index into [T, N] is inside it iff its step exists
    # the inputs of the next 4 steps, loaded ahead (x1..x4, shifted at every step)
    x1 = tl.load(x_ptr + offs, mask=live, other=0.0)
    x2 = tl.load(x_ptr + n64 + offs, mask=live & (n64 + offs < total), other=0.0)
    x3 = tl.load(x_ptr + 2 * n64 + offs, mask=live & (2 * n64 + offs < total), other=0.0)
    x4 = tl.load(x_ptr + 3 * n64 + offs, mask=live & (3 * n64 + offs < total), other=0.0)
    for t in range(steps):
        x = x1
        x1 = x2
        x2 = x3
        x3 = x4
        ahead = (t + 4) * n64 + offs
        x4 = tl.load(x_ptr + ahead, mask=live & (ahead < total), other=0.0)
        if INPUT_DECAY:  # h = u + (x - u) / tau
            if F64:
                h = u + (x - u) / leak
            else:
                h = u + tl.math.div_rn(x - u, leak)
        else:  # h = decay * u + x
            h = leak * u + x
        fired = h - vth >= 0.0
        at = t * n64 + offs
        tl.store(s_ptr + at, fired.to(x.dtype), mask=live)
        if STORE_H:
            tl.store(h_ptr + at, h, mask=live)
        if SOFT_RESET:
            u = tl.where(fired, h - vth, h)
        else:
            u = tl.where(fired, v_reset, h)
    tl.store(u_last_ptr + offs, u, mask=live)


def _backward_kernel(
    h_ptr,
    grad_s_ptr,
    sg_ptr,
    u0_ptr,
    leak_ptr,
    vth_ptr,
    consts_ptr,
    gu_ptr,
    grad_x_ptr,
    g_leak_ptr,
    g_vth_ptr,
    steps,
    n,
    INPUT_DECAY: tl.constexpr,
    SOFT_RESET: tl.constexpr,
    RESET_GRAD: tl.constexpr,
    KEEP_STATE: tl.constexpr,
    HAS_GRAD_S: tl.constexpr,
    SURROGATE: tl.constexpr,
    F64: tl.constexpr,
    BLOCK: tl.constexpr,
):
    """Reverse time from the stored h. gu holds the gradient of the final state on entry and
    of the initial state on exit; grad_x [T, N], g_leak and g_vth [N] are written."""
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    live = offs < n
    n64 = n.to(tl.int64)
    gu = tl.load(gu_ptr + offs, mask=live, other=0.0)
    u0 = tl.load(u0_ptr + offs, mask=live, other=0.0)
    leak = tl.load(leak_ptr + offs, mask=live, other=1.0)
    vth = tl.load(vth_ptr + offs, mask=live, other=1.0)
    v_reset = tl.load(consts_ptr)
    sp1 = tl.load(consts_ptr + 1)  # the surrogate's width or alpha
    sp2 = tl.load(consts_ptr + 2)  # atan: pi/2 alpha
    if INPUT_DECAY:  # dh/du = 1 - 1/tau, dh/dx = 1/tau
        if F64:
            coef_x = 1.0 / leak
        else:
            coef_x = tl.math.div_rn(tl.full((BLOCK,), 1.0, tl.float32), leak)
        coef_u = 1.0 - coef_x
    else:  # dh/du = decay, dh/dx = 1
        coef_u = leak
    g_leak = tl.full((BLOCK,), 0.0, gu.dtype)
    g_vth = tl.full((BLOCK,), 0.0, gu.dtype)
    last = steps - 1
    # a neuron's index into [T, N] is >= 0 iff its step exists
    # loaded ahead, shifted at every step: h of the current step (h_now) and of the 4 before
    # it (h1..h4), grad_s of the current step and the 3 before it (g1..g4)
    at = last * n64 + offs
    h_now = tl.load(h_ptr + at, mask=live, other=0.0)
    h1 = tl.load(h_ptr + at - n64, mask=live & (at - n64 >= 0), other=0.0)
    h2 = tl.load(h_ptr + at - 2 * n64, mask=live & (at - 2 * n64 >= 0), other=0.0)
    h3 = tl.load(h_ptr + at - 3 * n64, mask=live & (at - 3 * n64 >= 0), other=0.0)
    h4 = tl.load(h_ptr + at - 4 * n64, mask=live & (at - 4 * n64 >= 0), other=0.0)
    if HAS_GRAD_S:
        g1 = tl.load(grad_s_ptr + at, mask=live, other=0.0)
        g2 = tl.load(grad_s_ptr + at - n64, mask=live & (at - n64 >= 0), other=0.0)
        g3 = tl.load(grad_s_ptr + at - 2 * n64, mask=live & (at - 2 * n64 >= 0), other=0.0)
        g4 = tl.load(grad_s_ptr + at - 3 * n64, mask=live & (at - 3 * n64 >= 0), other=0.0)
    for k in range(steps):
        t = last - k
        at = t * n64 + offs
        h = h_now
        h_prev = h1
        h1 = h2
        h2 = h3
        h3 = h4
        back = at - 5 * n64
        h4 = tl.load(h_ptr + back, mask=live & (back >= 0), other=0.0)
        v = h - vth
        s = (v >= 0.0).to(h.dtype)
        # the surrogate derivative at v, as surrogate.py writes it
        if SURROGATE == 0:
            d = tl.load(sg_ptr + at, mask=live, other=0.0)
        elif SURROGATE == 1:  # triangle(width)
            d = tl.maximum(1.0 - tl.abs(v) / sp1, 0.0) / sp1
        elif SURROGATE == 2:  # sigmoid(alpha)
            sig = 1.0 / (1.0 + tl.exp(-(sp1 * v)))
            d = sp1 * sig * (1.0 - sig)
        elif SURROGATE == 3:  # atan(alpha): (alpha / 2) / (1 + (pi/2 alpha v)^2)
            d = sp1 / (1.0 + (sp2 * v) * (sp2 * v))
        else:  # rectangular(width)
            d = (tl.abs(v) < sp1 * 0.5).to(h.dtype) / sp1
        # the state before step t: the initial state, or step t - 1's potential after reset
        fired_prev = h_prev - vth >= 0.0
        if SOFT_RESET:
            u_prev = tl.where(fired_prev, h_prev - vth, h_prev)
        else:
            u_prev = tl.where(fired_prev, v_reset, h_prev)
        u_prev = tl.where(t > 0, u_prev, u0)
        if HAS_GRAD_S:
            g_s = g1
            g1 = g2
            g2 = g3
            g3 = g4
            back = at - 4 * n64
            g4 = tl.load(grad_s_ptr + back, mask=live & (back >= 0), other=0.0)
        else:
            g_s = tl.full((BLOCK,), 0.0, h.dtype)
        # through the reset: soft u' = h - s v_th, hard u' = (1 - s) h + s v_reset
        if SOFT_RESET:
            if RESET_GRAD:
                g_s = g_s - gu * vth
            g_h = gu + g_s * d
            g_vth -= s * gu + g_s * d
        else:
            if RESET_GRAD:
                g_s = g_s + gu * (v_reset - h)
            g_h = gu - gu * s + g_s * d
            g_vth -= g_s * d
        # through h = decay u + x, or h = u + (x - u) / tau
        if INPUT_DECAY:
            tl.store(grad_x_ptr + at, g_h * coef_x, mask=live)
            g_leak += g_h * (u_prev - h) * coef_x
        else:
            tl.store(grad_x_ptr + at, g_h, mask=live)
            g_leak += g_h * u_prev
        if KEEP_STATE:
            gu = g_h * coef_u
        else:  # SLTT: no gradient through the state from one step to the next
            gu = tl.full((BLOCK,), 0.0, h.dtype)
        h_now = h_prev
    tl.store(gu_ptr + offs, gu, mask=live)
    tl.store(g_leak_ptr + offs, g_leak, mask=live)
    tl.store(g_vth_ptr + offs, g_vth, mask=live)


@cache
def _kernels(interpret: str | None):
    """The jitted kernels; triton.jit reads TRITON_INTERPRET when it wraps a function, so they
    are built per value of it (the tests switch it on for their module only)."""
    del interpret  # the cache key
    return triton.jit(_forward_kernel), triton.jit(_backward_kernel)


def kernels():
    return _kernels(os.environ.get("TRITON_INTERPRET"))


def interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "on", "yes")


def check_input(x: torch.Tensor) -> None:
    """A ValueError unless the Triton kernels can run on `x`: a float32/float64 CUDA tensor (a
    CPU tensor under Triton's interpreter)."""
    runs_here = x.device.type == "cuda" or (x.device.type == "cpu" and interpreting())
    if x.dtype not in DTYPES or not runs_here:
        raise ValueError(
            "the triton LIF backend needs a float32/float64 CUDA tensor (a CPU tensor under "
            f"TRITON_INTERPRET=1), got {x.dtype} on {x.device}"
        )


def _launch_shape(n: int, device: torch.device) -> tuple[int, int]:
    """(neurons per program, warps per program): one neuron per thread, and blocks small
    enough that every multiprocessor gets several programs."""
    if device.type != "cuda":  # the interpreter: small blocks, so the tests cross edges
        return 16, 1
    sms = torch.cuda.get_device_properties(device).multi_processor_count
    block = 32
    while block < 256 and triton.cdiv(n, 2 * block) >= 4 * sms:
        block *= 2
    return block, block // 32


def _on_device(x: torch.Tensor):
    return torch.cuda.device(x.device) if x.device.type == "cuda" else contextlib.nullcontext()


def _consts(x: torch.Tensor, settings) -> torch.Tensor:
    """[v_reset, p1, p2] in the input's dtype: p1 the surrogate's width or alpha (atan: alpha/2)
    and p2 pi/2 alpha for atan, as surrogate.py computes them."""
    sur = settings.surrogate
    p1, p2 = 0.0, 0.0
    if type(sur) in (Triangle, Rectangular):
        p1 = sur.width
    elif type(sur) is Sigmoid:
        p1 = sur.alpha
    elif type(sur) is ATan:
        p1, p2 = sur.alpha / 2.0, math.pi / 2.0 * sur.alpha
    return torch.tensor([settings.v_reset, p1, p2], dtype=x.dtype, device=x.device)


def run_forward(x2d, u0, leak, vth, settings, h=None):
    """Spikes [T, N] and final state [N] of contiguous input x2d [T, N]; writes the potentials
    before reset into `h` when given. `settings`: lif_core._Settings."""
    steps, n = x2d.shape
    s = torch.empty_like(x2d)
    u_last = torch.empty_like(u0)
    if n == 0:
        return s, u_last
    forward, _ = kernels()
    block, warps = _launch_shape(n, x2d.device)
    with _on_device(x2d):
        forward[(triton.cdiv(n, block),)](
            x2d,
            u0.detach().contiguous(),
            leak.detach().contiguous(),
            vth.detach().contiguous(),
            _consts(x2d, settings),
            s,
            s if h is None else h,
            u_last,
            steps,
            n,
            INPUT_DECAY=settings.input_decay,
            SOFT_RESET=settings.soft_reset,
            STORE_H=h is not None,
            F64=x2d.dtype == torch.float64,
            BLOCK=block,
            num_warps=warps,
            **COMPILE_OPTIONS,
        )
    return s, u_last


def run_backward(h, grad_s, grad_u_last, u0, leak, vth, settings):
    """(grad_x [T, N], grad_u0, grad_leak, grad_vth [N]) from the stored potentials h."""
    steps, n = h.shape
    grad_x = torch.empty_like(h)
    gu = h.new_zeros(n) if grad_u_last is None else grad_u_last.detach().contiguous().clone()
    g_leak, g_vth = torch.empty_like(gu), torch.empty_like(gu)
    if n == 0:
        return grad_x, gu, g_leak, g_vth
    code = SURROGATE_CODES.get(type(settings.surrogate), 0)
    # a surrogate the kernel does not know: torch evaluates its derivative
    sg = settings.surrogate.derivative(h - vth).contiguous() if code == 0 else h
    _, backward = kernels()
    block, warps = _launch_shape(n, h.device)
    with _on_device(h):
        backward[(triton.cdiv(n, block),)](
            h,
            h if grad_s is None else grad_s.contiguous(),
            sg,
            u0,
            leak.detach().contiguous(),
            vth.detach().contiguous(),
            _consts(h, settings),
            gu,
            grad_x,
            g_leak,
            g_vth,
            steps,
            n,
            INPUT_DECAY=settings.input_decay,
            SOFT_RESET=settings.soft_reset,
            RESET_GRAD=not settings.detach_reset,
            KEEP_STATE=not settings.detach_state,
            HAS_GRAD_S=grad_s is not None,
            SURROGATE=code,
            F64=h.dtype == torch.float64,
            BLOCK=block,
            num_warps=warps,
            **COMPILE_OPTIONS,
        )
    return grad_x, gu, g_leak, g_vth


class TritonLIF(torch.autograd.Function):
    """LIF over [T, N] with the Triton kernels. Keeps h [T, N] and the initial state for the
    backward (see the module docstring), only when some input needs a gradient."""

    @staticmethod
    def forward(ctx, x2d, u0, leak, vth, settings):
        x2d = x2d.detach().contiguous()
        u0 = u0.detach().contiguous()
        keep = any(ctx.needs_input_grad[:4])
        h = torch.empty_like(x2d) if keep else None
        s, u_last = run_forward(x2d, u0, leak, vth, settings, h=h)
        if keep:
            ctx.save_for_backward(h, u0, leak, vth)
        ctx.settings = settings
        return s, u_last

    @staticmethod
    def backward(ctx, grad_s, grad_u_last):
        h, u0, leak, vth = ctx.saved_tensors
        grads = run_backward(h, grad_s, grad_u_last, u0, leak, vth, ctx.settings)
        needed = ctx.needs_input_grad
        return tuple(g if needed[i] else None for i, g in enumerate(grads)) + (None,)


# the forward for calls without gradients; under torch.func.vmap one launch runs every
# member of a population (population.py)
TritonLIFInference = inference_function(
    lambda x2d, u0, leak, vth, settings: run_forward(x2d.contiguous(), u0, leak, vth, settings),
    "TritonLIFInference",
)


def lif_2d(x2d, u0, leak, vth, settings):
    """lif_core.lif's Triton path: (spikes [T, N], final state [N])."""
    function = TritonLIF if torch.is_grad_enabled() else TritonLIFInference
    return function.apply(x2d, u0, leak, vth, settings)


@torch.no_grad()
def trace_2d(x2d, u0, leak, vth, settings):
    """lif_core.lif_trace's Triton path: (spikes, potentials before reset), both [T, N]."""
    x2d = x2d.contiguous()
    h = torch.empty_like(x2d)
    spikes, _ = run_forward(x2d, u0, leak, vth, settings, h=h)
    return spikes, h
