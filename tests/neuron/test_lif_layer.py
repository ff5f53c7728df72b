"""The LIF layer: its parameters against the step loop, its one return contract, its modes."""

import pytest
import torch

from neurojoule.neuron import LIF, LIFParameters, lif, lif_step, set_lif_mode, ssm_neurons


def step_loop(x, params):
    """lif_step along axis 0 from rest, in plain Python."""
    u, out = torch.zeros_like(x[0]), []
    for x_t in x:
        s, u = lif_step(x_t, u, params)
        out.append(s)
    return torch.stack(out)


def test_per_channel_parameters_broadcast_against_the_input_and_match_the_step_loop():
    layer = LIF(time_dim=-1, decay=0.25, channels=4, channel_dim=-2, learn_threshold=True,
                learn_decay=True)  # fmt: skip
    assert layer.ln_vth.shape == layer.decay_logit.shape == (4, 1)  # [B, H, L]: (H, 1)
    with torch.no_grad():
        layer.ln_vth.copy_(torch.tensor([[0.0], [-0.3], [0.2], [0.1]]))
        layer.decay_logit.copy_(torch.tensor([[-1.0], [0.0], [1.0], [0.5]]))
    x = torch.randn(2, 4, 300) * 1.5
    weight = torch.randn(2, 4, 300)
    spikes = layer(x)
    (spikes * weight).sum().backward()

    ln_vth = layer.ln_vth.detach().clone().requires_grad_()
    logit = layer.decay_logit.detach().clone().requires_grad_()
    params = LIFParameters(
        decay=torch.sigmoid(logit).reshape(4), v_threshold=ln_vth.exp().reshape(4)
    )
    ref = step_loop(x.permute(2, 0, 1), params).permute(1, 2, 0)
    assert torch.equal(spikes, ref) and 0.05 < spikes.mean() < 0.95
    g_vth, g_logit = torch.autograd.grad((ref * weight).sum(), [ln_vth, logit])
    torch.testing.assert_close(layer.ln_vth.grad, g_vth, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(layer.decay_logit.grad, g_logit, rtol=1e-5, atol=1e-5)


def test_learned_time_constant_gradients_match_the_step_loop():
    layer = LIF(time_dim=0, tau=2.0, channels=5, channel_dim=-1, learn_threshold=True,
                learn_decay=True, surrogate="atan(alpha=2)").double()  # fmt: skip
    assert layer.ln_vth.shape == (5,) and layer.decay is None
    x = torch.randn(80, 3, 5, dtype=torch.float64)
    weight = torch.randn(80, 3, 5, dtype=torch.float64)
    (layer(x) * weight).sum().backward()
    ln_vth = layer.ln_vth.detach().clone().requires_grad_()
    logit = layer.decay_logit.detach().clone().requires_grad_()
    params = LIFParameters(tau=1 / torch.sigmoid(logit), v_threshold=ln_vth.exp(),
                           surrogate="atan(alpha=2)")  # fmt: skip
    ref = step_loop(x, params)
    g_vth, g_logit = torch.autograd.grad((ref * weight).sum(), [ln_vth, logit])
    torch.testing.assert_close(layer.ln_vth.grad, g_vth, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(layer.decay_logit.grad, g_logit, rtol=1e-5, atol=1e-5)


def test_forward_returns_spikes_and_chunks_go_through_lif_with_the_layer_arguments():
    layer = LIF(time_dim=-1, decay=0.5, channels=3, channel_dim=-2, learn_threshold=True)
    with torch.no_grad():
        layer.ln_vth.uniform_(-0.5, 0.5)
    x = torch.randn(2, 3, 90) * 1.5
    whole = layer(x)
    assert isinstance(whole, torch.Tensor) and whole.shape == x.shape
    pieces, state = [], None
    for part in x.split([40, 1, 49], dim=-1):
        spikes, state = lif(*layer.lif_arguments(part), time_dim=layer.time_dim, state=state)
        pieces.append(spikes)
    assert torch.equal(torch.cat(pieces, -1), whole)


def test_dividing_by_the_threshold_gives_the_same_spikes_and_another_gradient():
    x = torch.randn(200, 6, dtype=torch.float64, requires_grad=True)
    layers = [
        LIF(time_dim=0, decay=0.125, channels=6, channel_dim=-1, learn_threshold=True,
            divide_by_threshold=divide).double()
        for divide in (False, True)
    ]  # fmt: skip
    for layer in layers:
        with torch.no_grad():
            layer.ln_vth.copy_(torch.linspace(-0.4, 0.6, 6))
    compared, divided = (layer(x) for layer in layers)
    assert torch.equal(compared, divided)
    g_compared = torch.autograd.grad(compared.sum(), x)[0]
    g_divided = torch.autograd.grad(divided.sum(), x)[0]
    assert not torch.allclose(g_compared, g_divided)


def test_shared_parameters_are_scalars_and_state_never_leaks_between_calls():
    layer = LIF(time_dim=0, decay=0.9, learn_threshold=True)
    assert layer.ln_vth.shape == () and layer.v_threshold.item() == pytest.approx(1.0)
    x = torch.rand(20, 10)
    assert torch.equal(layer(x), layer(x))


def test_modes_switch_without_touching_parameters_and_sdn_needs_a_multiplicative_decay():
    layer = LIF(time_dim=-1, decay=0.125, learn_threshold=True)
    x = torch.randn(4, 1024)
    exact = layer(x)
    state = {k: v.clone() for k, v in layer.state_dict().items()}
    set_lif_mode(layer, "sdn")
    assert layer.mode == "sdn" and (layer(x) == exact).float().mean() > 0.999
    assert all(torch.equal(state[k], v) for k, v in layer.state_dict().items())
    for unfit in (
        LIF(time_dim=0, tau=2.0),
        LIF(time_dim=0, decay=0.125, reset="soft"),
        LIF(time_dim=0, decay=0.125, v_reset=-0.1),
        LIF(time_dim=0, decay=0.125, learn_decay=True),
    ):
        assert ssm_neurons(unfit) == {}
        with pytest.raises(ValueError, match="'sdn' needs a fixed multiplicative decay"):
            unfit.mode = "sdn"
        assert unfit.mode == "bptt"


def test_sltt_detaches_the_state_and_keeps_the_spikes():
    x = torch.randn(50, 4, requires_grad=True)
    bptt = LIF(time_dim=0, decay=0.5)
    sltt = LIF(time_dim=0, decay=0.5, mode="sltt")
    a, b = bptt(x), sltt(x)
    assert torch.equal(a, b)
    # the gradient of the last step's spikes reaches earlier inputs only through the state
    g_bptt = torch.autograd.grad(a[-1].sum(), x)[0]
    g_sltt = torch.autograd.grad(b[-1].sum(), x)[0]
    assert g_bptt[:-1].abs().sum() > 0 and g_sltt[:-1].abs().sum() == 0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"channels": 4}, "both channels and channel_dim"),
        ({"channels": 4, "channel_dim": 1}, "counted from the end"),
        ({"mode": "exact"}, "mode must be one of"),
        ({"backend": "gpu"}, "backend"),
        ({"decay": None}, "exactly one of decay"),
    ],
)
def test_bad_layer_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LIF(**{"time_dim": 0, "decay": 0.5, **kwargs})


def test_bad_inputs_name_what_was_expected():
    layer = LIF(time_dim=0, decay=0.5, channels=4, channel_dim=-1, learn_threshold=True)
    with pytest.raises(ValueError, match="4 channels along dim -1"):
        layer(torch.ones(3, 2, 5))
    with pytest.raises(ValueError, match="0 time steps along dim 0"):
        layer(torch.ones(0, 2, 4))
    layer.mode = "sdn"
    with pytest.raises(ValueError, match="0 time steps along dim 0"):
        layer(torch.ones(0, 2, 4))


@pytest.mark.parametrize("threshold", ["channel", "shared"])
def test_the_threshold_scaling_has_the_gradients_of_a_plain_division(threshold):
    from neurojoule.neuron import SSMNeuron, SSMNeuronConfig

    layer = SSMNeuron(5, SSMNeuronConfig(threshold=threshold)).double()
    with torch.no_grad():
        layer.ln_vth.add_(torch.linspace(-0.5, 0.5, layer.ln_vth.numel()).view_as(layer.ln_vth))
    x = torch.randn(3, 5, 11, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(3, 5, 11, dtype=torch.float64)
    (layer.unit_threshold_input(x) * weight).sum().backward()
    got = x.grad.clone(), layer.ln_vth.grad.clone()
    x.grad, layer.ln_vth.grad = None, None
    (x / layer.v_threshold * weight).sum().backward()  # autograd's own division
    torch.testing.assert_close(got[0], x.grad, rtol=1e-12, atol=0)
    torch.testing.assert_close(got[1], layer.ln_vth.grad, rtol=1e-12, atol=1e-15)
