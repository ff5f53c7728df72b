"""SpikingSSM's neuron: a configuration of the LIF layer."""

import pytest
import torch

from neurojoule.neuron import LIF, LIFParameters, SSMNeuron, SSMNeuronConfig, lif


def test_is_a_lif_layer_whose_threshold_scaling_equals_lif_with_that_threshold():
    neuron = SSMNeuron(4, SSMNeuronConfig(threshold="channel"))
    assert isinstance(neuron, LIF) and neuron.ln_vth.shape == (4, 1)  # as in old checkpoints
    with torch.no_grad():
        neuron.ln_vth.copy_(torch.tensor([[0.0], [0.4], [-0.3], [1.0]]))
    y = torch.randn(3, 4, 500, dtype=torch.float64) * 2
    vth = neuron.ln_vth.detach().exp().double().reshape(1, 4)
    params = LIFParameters(decay=0.125, v_threshold=vth)
    expected, _ = lif(y.permute(2, 0, 1), params, time_dim=0)
    assert torch.equal(neuron.double()(y), expected.permute(1, 2, 0))


def test_threshold_settings_give_one_parameter_shape_each():
    assert SSMNeuron(3, SSMNeuronConfig(threshold="shared")).ln_vth.shape == ()
    assert not list(SSMNeuron(3, SSMNeuronConfig(threshold="fixed")).parameters())


def test_sdn_mode_agrees_with_exact_mode_and_keeps_parameters():
    neuron = SSMNeuron(8, SSMNeuronConfig(threshold="shared"))
    y = torch.randn(4, 8, 1024)
    exact = neuron(y)
    state = {k: v.clone() for k, v in neuron.state_dict().items()}
    neuron.mode = "sdn"
    assert (neuron(y) == exact).float().mean() > 0.999
    assert neuron.state_dict().keys() == state.keys()
    assert all(torch.equal(state[k], v) for k, v in neuron.state_dict().items())


@pytest.mark.parametrize("mode", ["bptt", "sltt", "sdn"])
def test_every_mode_trains_the_threshold(mode):
    neuron = SSMNeuron(2, SSMNeuronConfig(threshold="channel", mode=mode))
    y = torch.randn(2, 2, 300, requires_grad=True)
    neuron(y).sum().backward()
    assert y.grad.abs().sum() > 0 and neuron.ln_vth.grad.abs().sum() > 0


def test_bad_settings_and_shapes():
    with pytest.raises(ValueError, match="threshold"):
        SSMNeuronConfig(threshold="layer")
    with pytest.raises(ValueError, match="mode"):
        SSMNeuronConfig(mode="fast")
    with pytest.raises(ValueError, match="decay"):
        SSMNeuronConfig(decay=2.0)
    with pytest.raises(ValueError, match="3 channels along dim -2"):
        SSMNeuron(3)(torch.randn(2, 4, 10))
    with pytest.raises(ValueError, match="no SDN is shipped"):
        SSMNeuron(3, SSMNeuronConfig(decay=0.3, mode="sdn"))
