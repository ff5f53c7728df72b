import pytest
import torch

from neurojoule.neuron import SSMNeuron, lif


def test_threshold_scaling_equals_lif_with_that_threshold():
    neuron = SSMNeuron(4, threshold="channel")
    with torch.no_grad():
        neuron.ln_vth.copy_(torch.tensor([[0.0], [0.4], [-0.3], [1.0]]))
    y = torch.randn(3, 4, 500, dtype=torch.float64) * 2
    vth = neuron.ln_vth.detach().exp().double().reshape(1, 4)
    expected, _ = lif(y.permute(2, 0, 1), time_dim=0, tau=0.125, v_threshold=vth)
    assert torch.equal(neuron.double()(y), expected.permute(1, 2, 0))


def test_sdn_mode_agrees_with_exact_mode_and_keeps_parameters():
    neuron = SSMNeuron(8, threshold="shared")
    y = torch.randn(4, 8, 1024)
    exact = neuron(y)
    state = {k: v.clone() for k, v in neuron.state_dict().items()}
    neuron.mode = "sdn"
    assert (neuron(y) == exact).float().mean() > 0.999
    assert neuron.state_dict().keys() == state.keys()
    assert all(torch.equal(state[k], v) for k, v in neuron.state_dict().items())


@pytest.mark.parametrize("mode", ["bptt", "sltt", "sdn"])
def test_every_mode_trains_the_threshold(mode):
    neuron = SSMNeuron(2, threshold="channel", mode=mode)
    y = torch.randn(2, 2, 300, requires_grad=True)
    neuron(y).sum().backward()
    assert y.grad.abs().sum() > 0 and neuron.ln_vth.grad.abs().sum() > 0


def test_bad_settings_and_shapes():
    with pytest.raises(ValueError, match="threshold"):
        SSMNeuron(3, threshold="layer")
    with pytest.raises(ValueError, match="mode"):
        SSMNeuron(3, mode="fast")
    with pytest.raises(ValueError, match=r"\[B, 3, L\]"):
        SSMNeuron(3)(torch.randn(2, 4, 10))
    with pytest.raises(ValueError, match="no SDN is shipped"):
        SSMNeuron(3, tau=0.3, mode="sdn")
