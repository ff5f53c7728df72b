"""Compiled CPU kernels for the LIF recurrence (numba), forward and hand-written backward.

Layout: time-major 2-D arrays [T, N]. The N columns (neurons) are split into one contiguous
block per thread; within a block, time runs sequentially and the inner loop runs over the
block's contiguous neurons, so it vectorises. The surrogate derivative is not evaluated here:
the caller passes it in, computed by the same `Surrogate.derivative` the spike function uses.
"""

from __future__ import annotations

import numba
import numpy as np

MULTIPLICATIVE, INPUT = 0, 1  # decay forms: h = decay*u + x   |   h = u + (x - u)/tau


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
        leak_b = leak[lo:hi]
        vth_b = vth[lo:hi]
        for t in range(steps):
            if store_ckpt and t % every == 0:
                u_ckpt[t // every, lo:hi] = u
            x_t = x[t, lo:hi]
            s_t = s[t, lo:hi]
            if store_h:  # two loops: a conditional store inside one would stop vectorisation
                h_t = h[t, lo:hi]
                for i in range(hi - lo):
                    h_t[i] = _step(i, u, x_t, leak_b, vth_b, v_reset, form, soft_reset, s_t)
            else:
                for i in range(hi - lo):
                    _step(i, u, x_t, leak_b, vth_b, v_reset, form, soft_reset, s_t)
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
                hv = h_t[i]
                if soft_reset:
                    gs = gs_t[i] - gu_b[i] * vth_b[i] * reset_grad
                    gh = gu_b[i] + gs * d_t[i]
                    gv_b[i] -= s_t[i] * gu_b[i] + gs * d_t[i]
                    up = h_p[i] - s_p[i] * vth_b[i]
                else:
                    gs = gs_t[i] + gu_b[i] * (v_reset - hv) * reset_grad
                    gh = gu_b[i] - gu_b[i] * s_t[i] + gs * d_t[i]
                    gv_b[i] -= gs * d_t[i]
                    up = v_reset if s_p[i] != 0 else h_p[i]
                gx_t[i] = gh * cx_b[i]
                if form == MULTIPLICATIVE:
                    gt_b[i] += gh * up
                else:
                    gt_b[i] += gh * (up - hv) * cx_b[i]
                gu_b[i] = gh * cu_b[i] * keep_state


def block_size(n: int, threads: int) -> int:
    """Columns per thread block: one block per thread, rounded up to a cache line of floats."""
    per_thread = -(-n // max(threads, 1))
    return max(16, -(-per_thread // 16) * 16)
