import pytest
import torch
import torch.nn.functional as F
from torch import nn

from neurojoule.layers import (
    S4D,
    S4DBlock,
    S4DKernelConfig,
    SpikingS4DBlock,
    SSMBackbone,
    lif_mode,
    set_lif_mode,
    ssm_neurons,
)
from neurojoule.neuron import SSMNeuron, SSMNeuronConfig

H, N = 6, 8
KERNEL = S4DKernelConfig(d_state=N)


def gated_conv(x: torch.Tensor, conv: nn.Conv1d) -> torch.Tensor:
    """1x1 conv H -> 2H, then GLU over channels: first half times sigmoid of the second."""
    z = F.conv1d(x, conv.weight, conv.bias)
    return z[:, :H] * torch.sigmoid(z[:, H:])


def s4d_copy(block: nn.Module, bidirectional: bool) -> S4D:
    ssm = S4D(H, S4DKernelConfig(d_state=N, bidirectional=bidirectional)).double()
    ssm.load_state_dict(block.ssm.state_dict())
    return ssm


@pytest.mark.parametrize("bidirectional", [False, True])
def test_spiking_block_is_s4d_then_neuron_then_gated_conv(bidirectional):
    kernel = S4DKernelConfig(d_state=N, bidirectional=bidirectional)
    block = SpikingS4DBlock(H, kernel, SSMNeuronConfig(threshold="channel")).double()
    with torch.no_grad():
        block.neuron.ln_vth.copy_(0.5 * torch.randn(H, 1))
    x = torch.randn(3, H, 50, dtype=torch.float64)

    neuron = SSMNeuron(H, SSMNeuronConfig(threshold="channel")).double()
    neuron.load_state_dict(block.neuron.state_dict())
    expected = gated_conv(neuron(s4d_copy(block, bidirectional)(x)), block.conv)

    torch.testing.assert_close(block(x), expected, rtol=0, atol=1e-12)


def test_s4d_block_is_s4d_then_gelu_then_gated_conv():
    block = S4DBlock(H, S4DKernelConfig(d_state=N, bidirectional=True)).double()
    x = torch.randn(3, H, 50, dtype=torch.float64)
    expected = gated_conv(F.gelu(s4d_copy(block, True)(x)), block.conv)
    torch.testing.assert_close(block(x), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("mode", ["bptt", "sltt", "sdn"])
def test_the_gated_conv_of_a_spiking_block_receives_only_spikes(mode):
    backbone = SSMBackbone(H, 3, kernel=KERNEL, neuron=SSMNeuronConfig(mode=mode), norm="layer")
    seen = []
    for layer in backbone.layers:
        layer.block.conv.register_forward_hook(lambda m, args, out: seen.append(args[0]))
    backbone(torch.randn(2, H, 64) * 3)
    assert len(seen) == 3
    for conv_input in seen:
        assert ((conv_input == 0) | (conv_input == 1)).all()
        assert 0 < conv_input.mean() < 1  # neither silent nor saturated: the check means something


def double_block(x: torch.Tensor) -> torch.Tensor:
    return 2 * x + 1


class Doubler(nn.Module):
    def forward(self, x):
        return double_block(x)


def layer_norm_over_channels(x: torch.Tensor) -> torch.Tensor:
    mean = x.mean(1, keepdim=True)
    var = x.var(1, unbiased=False, keepdim=True)
    return (x - mean) / torch.sqrt(var + 1e-5)


def test_prenorm_and_postnorm_residuals_follow_their_definitions():
    x = torch.randn(2, H, 10, dtype=torch.float64)
    kwargs = {"block_factory": lambda index: Doubler(), "norm": "layer"}

    pre = SSMBackbone(H, 2, prenorm=True, **kwargs).double()
    expected = x
    for _ in range(2):
        expected = expected + double_block(layer_norm_over_channels(expected))
    torch.testing.assert_close(pre(x), layer_norm_over_channels(expected))  # plus a final norm

    post = SSMBackbone(H, 2, prenorm=False, **kwargs).double()
    expected = x
    for _ in range(2):
        expected = layer_norm_over_channels(expected + double_block(expected))
    torch.testing.assert_close(post(x), expected)


def layer_outputs(backbone: SSMBackbone, x: torch.Tensor) -> list[torch.Tensor]:
    outputs = []
    for layer in backbone.layers:
        layer.register_forward_hook(lambda m, args, out: outputs.append(out.detach()))
    backbone(x)
    return outputs


@pytest.mark.parametrize("spiking", [True, False])
def test_postnorm_layer_norm_normalises_every_position_of_every_layer(spiking):
    neuron = SSMNeuronConfig() if spiking else None
    backbone = SSMBackbone(16, 3, kernel=KERNEL, neuron=neuron, prenorm=False, norm="layer")
    outputs = layer_outputs(backbone, 5 * torch.randn(2, 16, 40) + 3)
    assert len(outputs) == 3
    for out in outputs:
        torch.testing.assert_close(out.mean(1), torch.zeros(2, 40), rtol=0, atol=1e-5)
        torch.testing.assert_close(out.std(1, unbiased=False), torch.ones(2, 40), rtol=0, atol=1e-3)


def test_postnorm_batch_norm_normalises_every_channel_of_every_layer_in_training():
    backbone = SSMBackbone(
        16, 3, kernel=KERNEL, neuron=SSMNeuronConfig(), prenorm=False, norm="batch"
    )
    for out in layer_outputs(backbone, 5 * torch.randn(4, 16, 40) + 3):
        torch.testing.assert_close(out.mean((0, 2)), torch.zeros(16), rtol=0, atol=1e-5)
        std = out.std((0, 2), unbiased=False)
        torch.testing.assert_close(std, torch.ones(16), rtol=0, atol=1e-3)


@pytest.mark.parametrize("neuron", [SSMNeuronConfig(decay=0.25, threshold="shared"), None])
def test_blocks_take_the_configs_whole_and_the_backbone_dropout(neuron):
    kernel = S4DKernelConfig(d_state=4, bidirectional=True, trainable_B=True, init="inv")
    backbone = SSMBackbone(H, 2, kernel=kernel, neuron=neuron, dropout=0.25)
    for layer in backbone.layers:
        assert layer.dropout.p == 0.25 and layer.block.dropout.p == 0.25
        assert layer.block.ssm.kernel.config is kernel
        if neuron is not None:
            assert layer.block.neuron.config is neuron and layer.block.neuron.decay == 0.25


def test_non_spiking_backbone_has_no_neurons():
    backbone = SSMBackbone(H, 2, kernel=KERNEL, neuron=None)
    assert ssm_neurons(backbone) == {}
    assert all(isinstance(layer.block, S4DBlock) for layer in backbone.layers)


def test_set_lif_mode_switches_every_neuron_and_can_be_undone():
    backbone = SSMBackbone(H, 3, kernel=KERNEL, neuron=SSMNeuronConfig(mode="sltt"))
    names = [f"layers.{i}.block.neuron" for i in range(3)]
    assert list(ssm_neurons(backbone)) == names

    previous = set_lif_mode(backbone, "sdn")
    assert previous == dict.fromkeys(names, "sltt")
    assert all(n.mode == "sdn" for n in ssm_neurons(backbone).values())

    assert set_lif_mode(backbone, previous) == dict.fromkeys(names, "sdn")
    assert all(n.mode == "sltt" for n in ssm_neurons(backbone).values())

    with lif_mode(backbone, "bptt"):
        assert all(n.mode == "bptt" for n in ssm_neurons(backbone).values())
    assert all(n.mode == "sltt" for n in ssm_neurons(backbone).values())


def test_set_lif_mode_rejects_bad_modes_and_names_without_changing_anything():
    backbone = SSMBackbone(H, 2, kernel=KERNEL, neuron=SSMNeuronConfig())
    with pytest.raises(ValueError, match="mode must be one of"):
        set_lif_mode(backbone, "exact")
    with pytest.raises(ValueError, match="unknown"):
        set_lif_mode(backbone, {"layers.5.block.neuron": "sdn"})
    with pytest.raises(ValueError, match="mode must be one of"):
        set_lif_mode(backbone, {"layers.0.block.neuron": "sdn", "layers.1.block.neuron": "x"})
    assert all(n.mode == "bptt" for n in ssm_neurons(backbone).values())


def test_set_lif_mode_restores_all_neurons_when_one_has_no_sdn():
    def block(index: int) -> SpikingS4DBlock:
        return SpikingS4DBlock(H, KERNEL, SSMNeuronConfig(decay=0.125 if index == 0 else 0.3))

    backbone = SSMBackbone(H, 2, block_factory=block)
    with pytest.raises(ValueError, match="no SDN is shipped"):
        set_lif_mode(backbone, "sdn")
    assert all(n.mode == "bptt" for n in ssm_neurons(backbone).values())


def test_bad_backbone_settings():
    with pytest.raises(ValueError, match="norm must be one of"):
        SSMBackbone(H, 1, norm="group")
    with pytest.raises(ValueError, match="n_layers >= 1"):
        SSMBackbone(H, 0)
    with pytest.raises(ValueError, match="not both"):
        SSMBackbone(H, 1, kernel=KERNEL, block_factory=lambda i: Doubler())
    with pytest.raises(ValueError, match=r"\[B, H, L\]"):
        SSMBackbone(H, 1, kernel=KERNEL)(torch.randn(2, H + 1, 10))
    for shape in ((0, H, 10), (2, H, 0)):
        with pytest.raises(ValueError, match="expected at least one sequence"):
            SSMBackbone(H, 1, kernel=KERNEL)(torch.randn(shape))
