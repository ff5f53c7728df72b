"""The per-step LIF function against the equations written out, and both backends of `lif`
against a plain Python iteration of the per-step function."""

import itertools
from dataclasses import replace

import pytest
import torch
from lif_reference import assert_same_grads, lif_inputs, lif_params, step_loop

import neurojoule.neuron.numba_lif as numba_lif
from neurojoule.neuron import LIFParameters, lif, lif_trace
from neurojoule.neuron.surrogate import Surrogate


class _StraightThroughStep(torch.autograd.Function):
    """H(v) forward; backward multiplies by a derivative function given by the test."""

    @staticmethod
    def forward(ctx, v, derivative):
        ctx.save_for_backward(v)
        ctx.derivative = derivative
        return (v >= 0).to(v.dtype)

    @staticmethod
    def backward(ctx, grad):
        (v,) = ctx.saved_tensors
        return grad * ctx.derivative(v), None


DERIVATIVES = {
    "triangle": lambda v: torch.clamp(1 - v.abs(), min=0),
    "sigmoid(alpha=4)": lambda v: 4 * torch.sigmoid(4 * v) * (1 - torch.sigmoid(4 * v)),
    "atan(alpha=2)": lambda v: 1 / (1 + (torch.pi * v) ** 2),
}


def written_out(x, u0, leak, vth, *, form, reset, v_reset, detach_reset, sltt, surrogate):
    """The LIF equations step by step, time on axis 0, each written out in full."""
    u = u0
    out = []
    for t in range(x.shape[0]):
        prev = u.detach() if sltt else u
        h = leak * prev + x[t] if form == "multiplicative" else prev + (x[t] - prev) / leak
        s = _StraightThroughStep.apply(h - vth, DERIVATIVES[surrogate])
        r = s.detach() if detach_reset else s
        u = h - r * vth if reset == "soft" else (1 - r) * h + r * v_reset
        out.append(s)
    return torch.stack(out), u


COMBINATIONS = list(
    itertools.product(
        ["multiplicative", "input"],  # decay form
        ["hard", "soft"],  # reset
        [0.0, -0.2],  # v_reset
        [False, True],  # detach_reset
        [False, True],  # detach_state (SLTT)
    )
)


@pytest.mark.parametrize(("form", "reset", "v_reset", "detach_reset", "sltt"), COMBINATIONS)
def test_the_step_function_is_the_written_out_equations(form, reset, v_reset, detach_reset, sltt):
    surrogate = "triangle" if reset == "hard" else "sigmoid(alpha=4)"
    x, u0, leak, vth = lif_inputs(torch.float64, form)
    leaves = (x, u0, leak, vth)
    settings = dict(reset=reset, v_reset=v_reset, detach_reset=detach_reset, detach_state=sltt)
    spikes, state = step_loop(x, u0, lif_params(form, leak, vth, surrogate=surrogate, **settings))
    ref_spikes, ref_state = written_out(
        x, u0, leak, vth, form=form, reset=reset, v_reset=v_reset,
        detach_reset=detach_reset, sltt=sltt, surrogate=surrogate,
    )  # fmt: skip
    assert torch.equal(spikes, ref_spikes) and 0.05 < spikes.mean() < 0.95
    torch.testing.assert_close(state, ref_state, rtol=0, atol=1e-12)
    assert_same_grads((spikes, state), (ref_spikes, ref_state), leaves, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("backend", ["numba", "torch"])
@pytest.mark.parametrize(("form", "reset", "v_reset", "detach_reset", "sltt"), COMBINATIONS)
# time last: the input's memory is neuron-major, as SpikingSSM's [B, H, L] is, which the
# numba kernels read and write in place
@pytest.mark.parametrize("time_last", [False, True])
def test_backend_equals_the_step_loop(
    backend, form, reset, v_reset, detach_reset, sltt, time_last, monkeypatch
):
    # Small backward chunks so that the numba path crosses several chunk boundaries.
    monkeypatch.setattr(numba_lif, "_CHUNK_ELEMENTS", 40)
    surrogate = "triangle" if reset == "hard" else "atan(alpha=2)"
    settings = dict(reset=reset, v_reset=v_reset, detach_reset=detach_reset, detach_state=sltt)
    for dtype in (torch.float64, torch.float32):
        x, u0, leak, vth = lif_inputs(dtype, form)
        leaves = (x, u0, leak, vth)
        params = lif_params(form, leak, vth, surrogate=surrogate, **settings)
        if time_last:
            x_last = x.movedim(0, -1).contiguous()
            spikes, state = lif(x_last, params, time_dim=-1, state=u0, backend=backend)
            spikes = spikes.movedim(-1, 0)
        else:
            spikes, state = lif(x, params, time_dim=0, state=u0, backend=backend)
        ref_spikes, ref_state = step_loop(x, u0, params)
        assert torch.equal(spikes, ref_spikes) and 0.05 < spikes.mean() < 0.95
        assert torch.equal(state, ref_state)
        assert_same_grads((spikes, state), (ref_spikes, ref_state), leaves, rtol=1e-5, atol=1e-5)


def test_numba_and_torch_backends_give_identical_spikes_on_long_input():
    x = torch.randn(3000, 64) * 1.5
    for params in (LIFParameters(decay=0.125), LIFParameters(tau=2.0)):
        a, ua = lif(x, params, time_dim=0, backend="numba")
        b, ub = lif(x, params, time_dim=0, backend="torch")
        assert torch.equal(a, b) and torch.equal(ua, ub)


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_chunked_run_equals_one_piece(backend):
    x = torch.randn(2, 4, 500)  # [B, H, L], time last
    params = LIFParameters(tau=3.0, reset="soft")
    whole, final = lif(x, params, time_dim=-1, backend=backend)
    pieces, state = [], None
    for part in torch.split(x, [123, 200, 1, 176], dim=-1):
        s, state = lif(part, params, time_dim=-1, state=state, backend=backend)
        pieces.append(s)
    assert torch.equal(torch.cat(pieces, dim=-1), whole)
    assert torch.equal(state, final)


def test_time_axis_is_taken_from_the_argument():
    x = torch.randn(6, 3, 40)
    a, _ = lif(x, LIFParameters(decay=0.5), time_dim=2)
    b, _ = lif(x.permute(2, 0, 1), LIFParameters(decay=0.5), time_dim=0)
    assert torch.equal(a, b.permute(1, 2, 0))


def test_threshold_scaling_property():
    """With v_reset = 0 and zero initial state, LIF(y; vth) == LIF(y / vth; 1)
    (docs/spiking-ssm.md)."""
    y = torch.randn(400, 8, dtype=torch.float64) * 2
    vth = torch.rand(8, dtype=torch.float64) + 0.5
    a, _ = lif(y, LIFParameters(decay=0.125, v_threshold=vth), time_dim=0)
    b, _ = lif(y / vth, LIFParameters(decay=0.125), time_dim=0)
    assert torch.equal(a, b)


NON_FINITE_SETTINGS = [
    pytest.param(form, reset, id=f"{form}-{reset}")
    for form, reset in itertools.product(["multiplicative", "input"], ["hard", "soft"])
]


def _currents(steps: int = 12) -> torch.Tensor:
    """[steps, 4]: four neurons that fire now and then."""
    return torch.tensor([0.3, 0.9, 1.4, 0.6]).repeat(steps, 1)


def _with(value, step: int) -> torch.Tensor:
    """The currents with `value` at `step` in every column."""
    x = _currents()
    x[step] = value
    return x


@pytest.mark.parametrize(("form", "reset"), NON_FINITE_SETTINGS)
@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_input_gives_the_same_result_on_both_backends(form, reset, value):
    params = lif_params(form, 0.5 if form == "multiplicative" else 2.0, 1.0, reset=reset)
    x = _with(value, 4)
    reference = step_loop(x, torch.zeros(4), params)
    for backend in ("numba", "torch"):
        spikes, state = lif(x, params, time_dim=0, backend=backend)
        assert torch.equal(spikes, reference[0])
        assert _same(state, reference[1])


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal, NaN where the other is NaN."""
    return bool(((a == b) | (a.isnan() & b.isnan())).all())


@pytest.mark.parametrize(("form", "reset"), NON_FINITE_SETTINGS)
@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_non_finite_input_behaves_as_documented(form, reset, backend):
    params = lif_params(form, 0.5 if form == "multiplicative" else 2.0, 1.0, reset=reset)
    clean, _ = lif(_with(0.0, 4), params, time_dim=0, backend=backend)
    assert clean[5:].sum() > 0  # without the bad value the neurons fire after step 4

    for value in (float("nan"), float("-inf")):  # silent from then on, state NaN or -Inf
        spikes, state = lif(_with(value, 4), params, time_dim=0, backend=backend)
        assert torch.equal(spikes[:4], clean[:4]) and spikes[4:].sum() == 0
        assert (state.isnan() | (state == float("-inf"))).all()
        if value != value:  # NaN
            assert state.isnan().all()

    spikes, state = lif(_with(float("inf"), 4), params, time_dim=0, backend=backend)
    assert torch.equal(spikes[:4], clean[:4]) and (spikes[4] == 1).all()
    if reset == "hard":  # reset to v_reset, then on as after any spike
        after, _ = lif(_currents(7), params, time_dim=0, backend=backend)
        assert torch.equal(spikes[5:], after)
    elif form == "multiplicative":  # +Inf stays: fires at every step
        assert (spikes[4:] == 1).all() and (state == float("inf")).all()
    else:  # Inf + (x - Inf) / tau is NaN: silent
        assert spikes[5:].sum() == 0 and state.isnan().all()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(x=torch.ones(4, 3, dtype=torch.int64)), "floating-point"),
        (dict(time_dim=2), "time_dim"),
        (dict(x=torch.ones(0, 3)), "0 time steps along dim 0; expected at least 1"),
        (dict(x=torch.ones(3, 0), time_dim=1), "0 time steps along dim 1"),
        (dict(state=torch.zeros(5)), "one step's shape"),
        (dict(params=LIFParameters(decay=0.5, v_threshold=torch.ones(7))), "does not broadcast"),
        (dict(backend="cuda"), "backend"),
        (dict(params={"decay": 0.5}), "LIFParameters"),
    ],
)
def test_bad_arguments_raise_value_errors(kwargs, match):
    args = dict(x=torch.ones(4, 3), params=LIFParameters(decay=0.5), time_dim=0)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        lif(args.pop("x"), args.pop("params"), **args)


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({}, "exactly one of decay"),
        ({"decay": 0.5, "tau": 2.0}, "exactly one of decay"),
        ({"decay": 1.5}, "decay must be a number in \\[0, 1\\]"),
        ({"tau": 0.5}, "tau must be a number >= 1"),
        ({"decay": 0.5, "v_threshold": 0.0}, "v_threshold must be a number > 0"),
        ({"decay": 0.5, "reset": "zero"}, "reset must be one of"),
        ({"decay": 0.5, "surrogate": "box"}, "unknown surrogate"),
    ],
)
def test_bad_parameters_are_rejected(fields, match):
    with pytest.raises(ValueError, match=match):
        LIFParameters(**fields)


def test_the_decay_form_follows_from_the_parameter_given():
    assert LIFParameters(decay=0.25).decay_form == "multiplicative"
    assert LIFParameters(tau=4.0).decay_form == "input"
    assert replace(LIFParameters(tau=4.0), tau=None, decay=0.5).leak == 0.5


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_trace_returns_potentials_before_reset(backend):
    x = torch.randn(2, 60, dtype=torch.float64) * 1.2 + 0.3  # [N, T], time last
    spikes, h = lif_trace(x, LIFParameters(decay=0.25), time_dim=1, backend=backend)
    u = torch.zeros(2, dtype=torch.float64)
    for t in range(60):
        expected_h = 0.25 * u + x[:, t]
        torch.testing.assert_close(h[:, t], expected_h, rtol=0, atol=1e-12)
        fired = expected_h >= 1.0
        assert torch.equal(spikes[:, t], fired.double())
        u = torch.where(fired, torch.zeros_like(u), expected_h)


@pytest.mark.parametrize("decay_form", ["input", "multiplicative"])
def test_vmap_runs_the_compiled_kernel_once_for_every_member(decay_form):
    """Without gradients, lif under torch.func.vmap (population search) folds the members into
    the neurons: the spikes and states of each member equal its own call."""
    generator = torch.Generator().manual_seed(0)
    x = 2 * torch.rand(5, 7, 3, 4, generator=generator)  # [members, T, B, C]
    thresholds = 0.5 + torch.rand(5, 4, generator=generator)  # one per member and channel

    def run(x_member, threshold):
        leak = {"tau": 2.0} if decay_form == "input" else {"decay": 0.6}
        params = LIFParameters(**leak, v_threshold=threshold)
        return lif(x_member, params, time_dim=0, backend="numba")

    with torch.no_grad():
        spikes, states = torch.vmap(run)(x, thresholds)
        for member in range(5):
            expected_spikes, expected_state = run(x[member], thresholds[member])
            assert torch.equal(spikes[member], expected_spikes)
            assert torch.equal(states[member], expected_state)
        shared, _ = torch.vmap(run, in_dims=(0, None))(x, thresholds[0])
        assert torch.equal(shared[3], run(x[3], thresholds[0])[0])


class _ShiftedTriangle(Surrogate):
    """A surrogate the compiled backward does not know: torch evaluates it per chunk."""

    name = "shifted-triangle"

    def derivative(self, v: torch.Tensor) -> torch.Tensor:
        return (1.0 - (v - 0.1).abs()).clamp_min(0.0)


@pytest.mark.parametrize(
    "surrogate",
    [
        "triangle(width=0.7)",
        "sigmoid(alpha=3)",
        "atan(alpha=1.5)",
        "rectangular(width=0.8)",
        _ShiftedTriangle(),
    ],
    ids=str,
)
@pytest.mark.parametrize("form", ["multiplicative", "input"])
def test_numba_gradients_follow_every_surrogate(surrogate, form, monkeypatch):
    monkeypatch.setattr(numba_lif, "_CHUNK_ELEMENTS", 40)
    for reset in ("hard", "soft"):
        x, u0, leak, vth = lif_inputs(torch.float64, form)
        params = lif_params(form, leak, vth, surrogate=surrogate, reset=reset)
        spikes, state = lif(x, params, time_dim=0, state=u0, backend="numba")
        ref_spikes, ref_state = step_loop(x, u0, params)
        assert torch.equal(spikes, ref_spikes) and torch.equal(state, ref_state)
        leaves = (x, u0, leak, vth)
        assert_same_grads((spikes, state), (ref_spikes, ref_state), leaves, rtol=1e-10, atol=1e-12)


def test_the_kernels_use_no_more_threads_than_cores_the_process_may_run_on():
    import os
    import subprocess
    import sys

    script = (
        "import os, numba, torch\n"
        "os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})\n"
        "torch.set_num_threads(2)\n"
        "from neurojoule.neuron import LIFParameters, lif\n"
        "x = torch.randn(50, 300, requires_grad=True)\n"
        "s, _ = lif(x, LIFParameters(decay=0.5), time_dim=0, backend='numba')\n"
        "s.sum().backward()\n"
        "print(numba.get_num_threads())\n"
    )
    if not hasattr(os, "sched_setaffinity"):
        pytest.skip("no CPU affinity on this platform")
    env = {**os.environ, "NUMBA_NUM_THREADS": "2"}  # 2 allowed, 1 core usable
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "1"


def test_the_kernels_leave_torch_with_the_threads_it_was_given():
    import os
    import subprocess
    import sys

    script = (
        "import torch\n"
        "torch.set_num_threads(1)\n"
        "from neurojoule.neuron import LIFParameters, lif\n"
        "x = torch.randn(50, 300, requires_grad=True)\n"
        "s, _ = lif(x, LIFParameters(decay=0.5), time_dim=0, backend='numba')\n"
        "s.sum().backward()\n"
        "import numba\n"
        "print(torch.get_num_threads(), numba.get_num_threads())\n"
    )
    env = {**os.environ, "NUMBA_NUM_THREADS": "2", "OMP_NUM_THREADS": "2"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1", "1"]


def test_the_kernels_leave_a_core_to_a_process_that_is_using_it(monkeypatch):
    import math
    import os
    import subprocess
    import sys
    import time

    if not os.path.exists("/proc/loadavg") or numba_lif._usable_cores() < 2:
        pytest.skip("needs Linux /proc and two usable cores")
    monkeypatch.setattr(torch, "get_num_threads", lambda: numba_lif._usable_cores())
    rival = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)  # running its loop
        monkeypatch.setattr(numba_lif, "_load_sample", [-math.inf, 0])
        assert numba_lif._runnable_elsewhere() >= 1
        assert numba_lif._sync_threads() <= numba_lif._usable_cores() - 1
    finally:
        rival.kill()
        rival.wait()
