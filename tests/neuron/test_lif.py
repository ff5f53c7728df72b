import itertools

import pytest
import torch

import neurojoule.neuron.lif_core as lif_module
from neurojoule.neuron import LIF, LIFDynamics, lif, lif_trace


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


def reference_lif(x, u0, tau, vth, *, decay, reset, v_reset, detach_reset, sltt, surrogate):
    """The LIF equations step by step, time on axis 0, each written out in full."""
    u = u0
    out = []
    for t in range(x.shape[0]):
        prev = u.detach() if sltt else u
        h = tau * prev + x[t] if decay == "multiplicative" else prev + (x[t] - prev) / tau
        s = _StraightThroughStep.apply(h - vth, DERIVATIVES[surrogate])
        r = s.detach() if detach_reset else s
        u = h - r * vth if reset == "soft" else (1 - r) * h + r * v_reset
        out.append(s)
    return torch.stack(out), u


def _inputs(dtype, steps=37, shape=(3, 5), decay="multiplicative", per_neuron=True):
    x = (torch.randn(steps, *shape, dtype=dtype) * 0.8 + 0.4).requires_grad_()
    u0 = (torch.rand(shape, dtype=dtype) * 0.5).requires_grad_()
    if decay == "multiplicative":
        tau = torch.rand(shape[-1], dtype=dtype) * 0.6 + 0.1 if per_neuron else torch.tensor(0.125)
    else:
        tau = torch.rand(shape[-1], dtype=dtype) * 2 + 1.5 if per_neuron else torch.tensor(2.0)
    vth = torch.rand(shape[-1], dtype=dtype) * 0.8 + 0.6 if per_neuron else torch.tensor(1.0)
    return x, u0, tau.to(dtype).requires_grad_(), vth.to(dtype).requires_grad_()


def _grads(spikes, state, leaves):
    weight = torch.linspace(-1, 1, spikes.numel(), dtype=spikes.dtype).reshape(spikes.shape)
    loss = (spikes * weight).sum() + (state * 0.3).sum()
    grads = torch.autograd.grad(loss, leaves, allow_unused=True)
    return [
        torch.zeros_like(leaf) if g is None else g for g, leaf in zip(grads, leaves, strict=True)
    ]


MODES = list(
    itertools.product(
        ["multiplicative", "input"],  # decay
        ["hard", "soft"],  # reset
        [False, True],  # detach_reset
        ["bptt", "sltt"],  # mode
    )
)


@pytest.mark.parametrize("backend", ["numba", "torch"])
@pytest.mark.parametrize(("decay", "reset", "detach_reset", "mode"), MODES)
def test_agrees_with_reference_loop(backend, decay, reset, detach_reset, mode, monkeypatch):
    # Small backward chunks so that the numba path crosses several chunk boundaries.
    monkeypatch.setattr(lif_module, "_CHUNK_ELEMENTS", 40)
    surrogate = "triangle" if reset == "hard" else "sigmoid(alpha=4)"
    v_reset = 0.0 if detach_reset else -0.2
    for dtype in (torch.float64, torch.float32):
        x, u0, tau, vth = _inputs(dtype, decay=decay)
        leaves = (x, u0, tau, vth)
        dyn = LIFDynamics(decay, reset, v_reset, detach_reset, mode, surrogate)
        spikes, state = lif(
            x, time_dim=0, tau=tau, v_threshold=vth, dynamics=dyn, state=u0, backend=backend
        )
        ref_spikes, ref_state = reference_lif(
            x,
            u0,
            tau,
            vth,
            decay=decay,
            reset=reset,
            v_reset=v_reset,
            detach_reset=detach_reset,
            sltt=mode == "sltt",
            surrogate=surrogate,
        )
        assert torch.equal(spikes, ref_spikes)
        assert 0.05 < spikes.mean() < 0.95
        torch.testing.assert_close(state, ref_state, rtol=1e-6, atol=1e-6)
        for got, want in zip(
            _grads(spikes, state, leaves), _grads(ref_spikes, ref_state, leaves), strict=True
        ):
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_numba_and_torch_backends_give_identical_spikes_on_long_input():
    x = torch.randn(3000, 64) * 1.5
    for decay, tau in (("multiplicative", 0.125), ("input", 2.0)):
        dyn = LIFDynamics(decay=decay)
        a, ua = lif(x, time_dim=0, tau=tau, dynamics=dyn, backend="numba")
        b, ub = lif(x, time_dim=0, tau=tau, dynamics=dyn, backend="torch")
        assert torch.equal(a, b) and torch.equal(ua, ub)


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_chunked_run_equals_one_piece(backend):
    x = torch.randn(2, 4, 500)  # [B, H, L], time last
    dyn = LIFDynamics(decay="input", reset="soft")
    whole, final = lif(x, time_dim=-1, tau=3.0, dynamics=dyn, backend=backend)
    pieces, state = [], None
    for part in torch.split(x, [123, 200, 1, 176], dim=-1):
        s, state = lif(part, time_dim=-1, tau=3.0, dynamics=dyn, state=state, backend=backend)
        pieces.append(s)
    assert torch.equal(torch.cat(pieces, dim=-1), whole)
    assert torch.equal(state, final)


def test_time_axis_is_taken_from_the_argument():
    x = torch.randn(6, 3, 40)
    a, _ = lif(x, time_dim=2, tau=0.5)
    b, _ = lif(x.permute(2, 0, 1), time_dim=0, tau=0.5)
    assert torch.equal(a, b.permute(1, 2, 0))


def test_threshold_scaling_property():
    """With v_reset = 0 and zero initial state, LIF(y; vth) == LIF(y / vth; 1) (REFERENCE 1.3)."""
    y = torch.randn(400, 8, dtype=torch.float64) * 2
    vth = torch.rand(8, dtype=torch.float64) + 0.5
    a, _ = lif(y, time_dim=0, tau=0.125, v_threshold=vth)
    b, _ = lif(y / vth, time_dim=0, tau=0.125, v_threshold=1.0)
    assert torch.equal(a, b)


def test_module_per_channel_parameters_on_channel_axis_match_reference():
    layer = LIF(
        time_dim=-1,
        tau=0.25,
        channels=4,
        channel_dim=1,
        learn_threshold=True,
        learn_decay=True,
    )
    with torch.no_grad():
        layer.ln_vth.copy_(torch.tensor([0.0, -0.3, 0.2, 0.1]))
        layer.decay_logit.copy_(torch.tensor([-1.0, 0.0, 1.0, 0.5]))
    x = torch.randn(2, 4, 300) * 1.5  # [B, H, L]
    weight = torch.randn(2, 4, 300)
    spikes = layer(x)
    (spikes * weight).sum().backward()

    ln_vth = layer.ln_vth.detach().clone().requires_grad_()
    logit = layer.decay_logit.detach().clone().requires_grad_()
    ref, _ = reference_lif(
        x.permute(2, 0, 1),
        torch.zeros(2, 4),
        torch.sigmoid(logit),
        ln_vth.exp(),
        decay="multiplicative",
        reset="hard",
        v_reset=0.0,
        detach_reset=False,
        sltt=False,
        surrogate="triangle",
    )
    ref = ref.permute(1, 2, 0)
    assert torch.equal(spikes, ref)
    g_vth, g_logit = torch.autograd.grad((ref * weight).sum(), [ln_vth, logit])
    torch.testing.assert_close(layer.ln_vth.grad, g_vth, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(layer.decay_logit.grad, g_logit, rtol=1e-5, atol=1e-5)


def test_module_parameters_gradients_match_reference():
    layer = LIF(
        time_dim=0,
        tau=2.0,
        decay="input",
        channels=5,
        channel_dim=-1,
        learn_threshold=True,
        learn_decay=True,
        surrogate="atan(alpha=2)",
    )
    x = torch.randn(80, 3, 5, dtype=torch.float64)
    layer = layer.double()
    weight = torch.randn(80, 3, 5, dtype=torch.float64)
    (layer(x) * weight).sum().backward()
    ln_vth = layer.ln_vth.detach().clone().requires_grad_()
    logit = layer.decay_logit.detach().clone().requires_grad_()
    ref, _ = reference_lif(
        x,
        torch.zeros(3, 5, dtype=torch.float64),
        1 / torch.sigmoid(logit),
        ln_vth.exp(),
        decay="input",
        reset="hard",
        v_reset=0.0,
        detach_reset=False,
        sltt=False,
        surrogate="atan(alpha=2)",
    )
    g_vth, g_logit = torch.autograd.grad((ref * weight).sum(), [ln_vth, logit])
    torch.testing.assert_close(layer.ln_vth.grad, g_vth, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(layer.decay_logit.grad, g_logit, rtol=1e-5, atol=1e-5)


def test_shared_threshold_is_a_scalar_parameter():
    layer = LIF(time_dim=0, learn_threshold=True)
    assert layer.ln_vth.shape == ()
    assert layer.v_threshold.item() == pytest.approx(1.0)


def test_module_does_not_leak_state_between_calls():
    layer = LIF(time_dim=0, tau=0.9)
    x = torch.rand(20, 10)
    assert torch.equal(layer(x), layer(x))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(x=torch.ones(4, 3, dtype=torch.int64)), "floating-point"),
        (dict(time_dim=2), "time_dim"),
        (dict(tau=1.5), "multiplicative decay tau"),
        (dict(state=torch.zeros(5)), "one step's shape"),
        (dict(v_threshold=torch.ones(7)), "does not broadcast"),
        (dict(backend="cuda"), "backend"),
    ],
)
def test_bad_arguments_raise_value_errors(kwargs, match):
    args = dict(x=torch.ones(4, 3), time_dim=0, tau=0.5)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        lif(args.pop("x"), **args)


def test_bad_dynamics_and_channel_shapes_are_rejected():
    with pytest.raises(ValueError, match="decay"):
        LIFDynamics(decay="exponential")
    with pytest.raises(ValueError, match="input-decay tau"):
        LIF(time_dim=0, decay="input", tau=0.5)
    layer = LIF(time_dim=0, channels=4, channel_dim=-1, learn_threshold=True)
    with pytest.raises(ValueError, match="4 channels"):
        layer(torch.ones(3, 2, 5))


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_trace_returns_potentials_before_reset(backend):
    x = torch.randn(2, 60, dtype=torch.float64) * 1.2 + 0.3  # [N, T], time last
    spikes, h = lif_trace(x, time_dim=1, tau=0.25, backend=backend)
    u = torch.zeros(2, dtype=torch.float64)
    for t in range(60):
        expected_h = 0.25 * u + x[:, t]
        torch.testing.assert_close(h[:, t], expected_h, rtol=0, atol=1e-12)
        fired = expected_h >= 1.0
        assert torch.equal(spikes[:, t], fired.double())
        u = torch.where(fired, torch.zeros_like(u), expected_h)
