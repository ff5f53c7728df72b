"""Compiled CPU kernels for the LIF recurrence (numba), forward and hand-written backward.

Layout: time-major 2-D arrays [T, N]. The N columns (neurons) are split into one contiguous
block per thread; within a block, time runs sequentially and the inner loop runs over the
block's contiguous neurons, so it vectorises. The arrays may also be neuron-major ([N, T] in
memory, passed as its transpose): the same loops then read each neuron's steps in order.

The backward runs as one parallel region: each thread recomputes its block's potentials chunk
by chunk from the checkpoints and steps back through them, evaluating the built-in surrogate
derivatives (SURROGATE_CODES) itself. A machine busy with other work then costs a wait at one
barrier per call instead of at several per chunk. For any other surrogate the caller computes
the derivative per chunk with `Surrogate.derivative` and calls `lif_backward_chunk`.
"""

from __future__ import annotations

import math

import numba
import numpy as np

MULTIPLICATIVE, INPUT = 0, 1  # decay forms: h = decay*u + x   |   h = u + (x - u)/tau
# surrogate.py's built-in derivatives, each with its one parameter (width or alpha)
SURROGATE_CODES = {"triangle": 0, "sigmoid": 1, "atan": 2, "rectangular": 3}
NEURON_MAJOR_BLOCK = 64  # neurons per block when each neuron's steps are contiguous


@numba.njit(inline="always")
def _step(i, u, x_t, leak, vth, v_reset, form, soft_reset, s_t):
    """One step of neuron i: updates the state u[i], writes the spike s_t[i], returns h.
    `leak` is the decay factor (form MULTIPLICATIVE) or the time constant (form INPUT)."""
    if form == MULTIPLICATIVE:
        hv = leak[i] * u[i] + x_t[i]
    else:
        hv = u[i] + (x_t[i] - u[i]) / leak[i]
    fired = hv >= vth[i]
    s_t[i] = 1.0 if fired else 0.0
    if fired:
        u[i] = hv - vth[i] if soft_reset else v_reset
    else:
        u[i] = hv
    return hv


@numba.njit(parallel=True, cache=True, nogil=True)
def lif_forward(x, u0, leak, vth, v_reset, form, soft_reset, block, s, u_last, h, u_ckpt, every):
    """Run the recurrence of lif_core.lif_step; writes spikes s and the final state u_last.

    Optional outputs (pass arrays with zero rows to skip them): h, the potentials before reset;
    u_ckpt[c], the state before step c * every, from which backward recomputes a chunk.
    """
    steps, n = x.shape
    store_h = h.shape[0] > 0
    store_ckpt = u_ckpt.shape[0] > 0
    for b in numba.prange((n + block - 1) // block):
        lo = b * block
        hi = min(lo + block, n)
        u = u0[lo:hi].copy()
        leak_b = leak[lo:hi].copy()  # rows of the block's own: they alias nothing
        vth_b = vth[lo:hi].copy()
        x_t = np.empty(hi - lo, dtype=x.dtype)
        s_t = np.empty(hi - lo, dtype=x.dtype)
        h_t = np.empty(hi - lo, dtype=x.dtype)
        for t in range(steps):
            if store_ckpt and t % every == 0:
                u_ckpt[t // every, lo:hi] = u
            x_t[:] = x[t, lo:hi]
            if store_h:  # two loops: a conditional store inside one would stop vectorisation
                for i in range(hi - lo):
                    h_t[i] = _step(i, u, x_t, leak_b, vth_b, v_reset, form, soft_reset, s_t)
                h[t, lo:hi] = h_t
            else:
                for i in range(hi - lo):
                    _step(i, u, x_t, leak_b, vth_b, v_reset, form, soft_reset, s_t)
            s[t, lo:hi] = s_t
        u_last[lo:hi] = u


@numba.njit(parallel=True, cache=True, nogil=True)
def lif_backward_chunk(
    sg,
    grad_s,
    h,
    s,
    u_start,
    coef_u,
    coef_x,
    vth,
    v_reset,
    form,
    soft_reset,
    reset_grad,
    keep_state,
    block,
    grad_x,
    gu,
    g_leak,
    g_vth,
):
    """Reverse-time pass over one chunk of steps (all arrays [chunk, N]), newest step first.

    h and s are the chunk's recomputed potentials before reset and spikes, u_start the state
    before its first step, sg the surrogate derivative at h - vth. coef_u and coef_x are dh/du
    and dh/dx per neuron. gu (the gradient reaching the state after the chunk), g_leak and g_vth
    are carried between chunks and updated in place. reset_grad is 0 where the reset is
    detached, keep_state 0 for SLTT (both 1 otherwise), typed like the arrays so that float32
    work stays float32.
    """
    steps, n = sg.shape
    for b in numba.prange((n + block - 1) // block):
        lo = b * block
        hi = min(lo + block, n)
        gu_b = gu[lo:hi]
        gt_b = g_leak[lo:hi]
        gv_b = g_vth[lo:hi]
        cu_b = coef_u[lo:hi]
        cx_b = coef_x[lo:hi]
        vth_b = vth[lo:hi]
        no_spikes = np.zeros(hi - lo, dtype=h.dtype)
        for t in range(steps - 1, -1, -1):
            h_t = h[t, lo:hi]
            s_t = s[t, lo:hi]
            d_t = sg[t, lo:hi]
            gs_t = grad_s[t, lo:hi]
            gx_t = grad_x[t, lo:hi]
            # the state before step t, rebuilt from step t - 1
            h_p = h[t - 1, lo:hi] if t > 0 else u_start[lo:hi]
            s_p = s[t - 1, lo:hi] if t > 0 else no_spikes
            for i in range(hi - lo):
                gx_t[i] = _back_step(
                    i, h_t[i], s_t[i], d_t[i], gs_t[i], h_p[i], s_p[i], gu_b, gt_b, gv_b,
                    cu_b, cx_b, vth_b, v_reset, form, soft_reset, reset_grad, keep_state,
                )  # fmt: skip


@numba.njit(inline="always")
def _back_step(
    i, hv, sv, d, gs_in, hp, sp, gu, g_leak, g_vth,
    coef_u, coef_x, vth, v_reset, form, soft_reset, reset_grad, keep_state,
):  # fmt: skip
    """One step back in time for neuron i: h, spike, surrogate derivative and incoming spike
    gradient of this step, h and spike of the step before. Updates the state gradient gu[i]
    and the parameter gradients in place; returns the input's gradient."""
    if soft_reset:
        gs = gs_in - gu[i] * vth[i] * reset_grad
        gh = gu[i] + gs * d
        g_vth[i] -= sv * gu[i] + gs * d
        up = hp - sp * vth[i]
    else:
        gs = gs_in + gu[i] * (v_reset - hv) * reset_grad
        gh = gu[i] - gu[i] * sv + gs * d
        g_vth[i] -= gs * d
        up = v_reset if sp != 0 else hp
    if form == MULTIPLICATIVE:
        g_leak[i] += gh * up
    else:
        g_leak[i] += gh * (up - hv) * coef_x[i]
    gu[i] = gh * coef_u[i] * keep_state
    return gh * coef_x[i]


@numba.njit(inline="always")
def _back_row(
    h_t, s_t, d, gs_t, h_p, s_p, gu, g_leak, g_vth, coef_u, coef_x, vth,
    v_reset, form, soft_reset, reset_grad, keep_state, gx_t, gh, up,
):  # fmt: skip
    """_back_step for a row of neurons, split into short loops over few arrays each (gh and
    up are scratch rows): inside the parallel kernel the compiler vectorises those, not the
    one long loop. The same operations in the same order as _back_step."""
    w = h_t.size
    if soft_reset:
        for i in range(w):
            gh[i] = gs_t[i] - gu[i] * vth[i] * reset_grad  # the spike's gradient, for now
        for i in range(w):
            g_vth[i] -= s_t[i] * gu[i] + gh[i] * d[i]
        for i in range(w):
            gh[i] = gu[i] + gh[i] * d[i]
        for i in range(w):
            up[i] = h_p[i] - s_p[i] * vth[i]
    else:
        for i in range(w):
            gh[i] = (gs_t[i] + gu[i] * (v_reset - h_t[i]) * reset_grad) * d[i]  # for now
        for i in range(w):
            g_vth[i] -= gh[i]
        for i in range(w):
            gh[i] = gu[i] - gu[i] * s_t[i] + gh[i]
        for i in range(w):
            up[i] = v_reset if s_p[i] != 0 else h_p[i]
    for i in range(w):
        gx_t[i] = gh[i] * coef_x[i]
    if form == MULTIPLICATIVE:
        for i in range(w):
            g_leak[i] += gh[i] * up[i]
    else:
        for i in range(w):
            g_leak[i] += gh[i] * (up[i] - h_t[i]) * coef_x[i]
    for i in range(w):
        gu[i] = gh[i] * coef_u[i] * keep_state


@numba.njit(inline="always")
def _surrogate_row(d, h_t, vth, code, p1, p2):
    """d[i] = surrogate derivative at h_t[i] - vth[i] (surrogate.py's, by SURROGATE_CODES, with
    the parameters of surrogate_parameters), one loop per surrogate so that each vectorises.
    Every constant derives from p1, typed like the arrays: a float64 literal would promote
    float32 work."""
    one = p1 / p1
    zero = p1 - p1
    if code == 0:  # triangle: (w - |v|) / w^2 inside |v| < w
        for i in range(d.size):
            d[i] = max(p1 - abs(h_t[i] - vth[i]), zero) / (p1 * p1)
    elif code == 1:  # sigmoid: alpha sig (1 - sig)
        for i in range(d.size):
            sig = one / (one + math.exp(-p1 * (h_t[i] - vth[i])))
            d[i] = p1 * sig * (one - sig)
    elif code == 2:  # atan: (alpha / 2) / (1 + (pi / 2 alpha v)^2)
        for i in range(d.size):
            v = p2 * (h_t[i] - vth[i])
            d[i] = p1 / (one + v * v)
    else:  # rectangular: 1/w inside |v| < w/2
        for i in range(d.size):
            v = abs(h_t[i] - vth[i])
            d[i] = (one if v + v < p1 else zero) / p1


def surrogate_parameters(code: int, parameter: float) -> tuple[float, float]:
    """(p1, p2) of _surrogate_row for a surrogate's width or alpha."""
    if code == SURROGATE_CODES["atan"]:
        return parameter / 2.0, math.pi / 2.0 * parameter
    return parameter, 0.0


@numba.njit(parallel=True, cache=True, nogil=True)
def lif_backward(
    x, u_ckpt, every, leak, vth, coef_u, coef_x, v_reset, form, soft_reset, reset_grad,
    keep_state, surrogate, p1, p2, block, grad_s, grad_x, gu, g_leak, g_vth,
):  # fmt: skip
    """The whole backward in one parallel region (arrays [T, N]; per-neuron vectors [N]).

    u_ckpt[c] is the state before step c * every, as lif_forward stored it. Each block of
    neurons walks the chunks newest first: it recomputes the chunk's potentials and spikes
    into buffers of its own, then steps back through them. gu (the gradient reaching the
    final state), g_leak and g_vth are updated in place; grad_x is written.
    """
    steps, n = x.shape
    for b in numba.prange((n + block - 1) // block):
        lo = b * block
        hi = min(lo + block, n)
        h = np.empty((every, hi - lo), dtype=x.dtype)
        s = np.empty((every, hi - lo), dtype=x.dtype)
        u = np.empty(hi - lo, dtype=x.dtype)
        u_start = np.empty(hi - lo, dtype=x.dtype)
        no_spikes = np.zeros(hi - lo, dtype=x.dtype)
        d = np.empty(hi - lo, dtype=x.dtype)
        gh = np.empty(hi - lo, dtype=x.dtype)
        up = np.empty(hi - lo, dtype=x.dtype)
        x_row = np.empty(hi - lo, dtype=x.dtype)
        leak_b, vth_b = leak[lo:hi].copy(), vth[lo:hi].copy()  # rows that alias nothing
        cu_b, cx_b = coef_u[lo:hi], coef_x[lo:hi]
        gu_b, gt_b, gv_b = gu[lo:hi], g_leak[lo:hi], g_vth[lo:hi]
        for c in range(u_ckpt.shape[0] - 1, -1, -1):
            t0 = c * every
            t1 = min(t0 + every, steps)
            u_start[:] = u_ckpt[c, lo:hi]
            u[:] = u_start
            for t in range(t0, t1):
                x_row[:] = x[t, lo:hi]
                x_t, h_t, s_t = x_row, h[t - t0], s[t - t0]
                for i in range(hi - lo):
                    h_t[i] = _step(i, u, x_t, leak_b, vth_b, v_reset, form, soft_reset, s_t)
            for t in range(t1 - 1, t0 - 1, -1):
                k = t - t0
                h_t, s_t = h[k], s[k]
                h_p = h[k - 1] if k > 0 else u_start  # the step before, rebuilt
                s_p = s[k - 1] if k > 0 else no_spikes
                gs_t, gx_t = grad_s[t, lo:hi], grad_x[t, lo:hi]
                _surrogate_row(d, h_t, vth_b, surrogate, p1, p2)
                _back_row(
                    h_t, s_t, d, gs_t, h_p, s_p, gu_b, gt_b, gv_b, cu_b, cx_b, vth_b,
                    v_reset, form, soft_reset, reset_grad, keep_state, gx_t, gh, up,
                )  # fmt: skip


def block_size(n: int, threads: int) -> int:
    """Columns per thread block: one block per thread, rounded up to a cache line of floats."""
    per_thread = -(-n // max(threads, 1))
    return max(16, -(-per_thread // 16) * 16)
