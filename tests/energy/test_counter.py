"""Operation and spike counts, each compared with a count worked out by hand in the test."""

import itertools

import pytest
import torch
from time_first_net import TimeFirstNet
from torch import nn

from neurojoule.energy import EnergyCounter, SynapticMatmul, conv_sops, measure_energy
from neurojoule.layers import S4DKernelConfig
from neurojoule.neuron import LIFParameters, SpikingNeuron, lif


def count_one_call(module, *inputs, samples=1):
    with EnergyCounter(module) as counter:
        module(*inputs)
    return counter.report(samples)


def only_layer(report):
    (row,) = report.layers
    return row


def test_linear_counts_spikes_times_out_features():
    fc = nn.Linear(4, 3)
    spikes = torch.tensor([[1.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]])
    row = only_layer(count_one_call(fc, spikes, samples=2))
    assert (row.name, row.kind, row.calls) == ("(model)", "Linear", 1)
    assert (row.input_elements, row.input_nonzero, row.input_nonbinary) == (8, 3, 0)
    assert (row.input_min, row.input_max) == (0.0, 1.0)
    assert row.binary
    assert row.dense_macs == 8 * 3  # every input element times 3 outputs
    assert row.sops == 3 * 3  # 3 spikes, each reaching 3 outputs
    assert row.fan_out == 3
    assert row.nonzero_rate == 3 / 8


def test_linear_over_time_first_input_counts_every_step():
    fc = nn.Linear(2, 5)
    spikes = torch.zeros(3, 2, 2)  # [T, B, features]
    spikes[0, 0, 1] = spikes[2, 1, 0] = 1.0
    row = only_layer(count_one_call(fc, spikes))
    assert (row.dense_macs, row.sops) == (12 * 5, 2 * 5)


def single_spike(shape, *position):
    x = torch.zeros(shape)
    x[position] = 1.0
    return x


@pytest.mark.parametrize(
    ("position", "outputs_reached"),
    [((0, 0), 4), ((0, 4), 4), ((0, 2), 6), ((2, 2), 9), ((1, 3), 9)],
)
def test_conv2d_border_spikes_reach_fewer_outputs(position, outputs_reached):
    conv = nn.Conv2d(1, 2, 3, padding=1)
    x = single_spike((1, 1, 5, 5), 0, 0, *position)
    row = only_layer(count_one_call(conv, x))
    # 3x3 kernel, padding 1: a corner feeds a 2x2 patch of outputs, an edge 2x3, the inside 3x3.
    assert row.sops == outputs_reached * 2
    assert row.dense_macs == (2 * 5 * 5) * (1 * 9)


def test_conv2d_stride_and_groups():
    conv = nn.Conv2d(4, 6, 3, stride=2, groups=2)
    x = torch.zeros(1, 4, 5, 5)
    # Output rows/cols 0 and 1 read input rows/cols 0-2 and 2-4: row 2 is read twice, others once.
    x[0, 0, 2, 2] = 1.0  # 2 x 2 outputs per channel
    x[0, 3, 0, 4] = 1.0  # 1 x 1
    x[0, 1, 1, 2] = 1.0  # 1 x 2
    row = only_layer(count_one_call(conv, x))
    out_channels_per_group = 6 // 2
    assert row.sops == (4 + 1 + 2) * out_channels_per_group
    assert row.dense_macs == (6 * 2 * 2) * (4 // 2 * 9)


def test_conv1d_with_dilation():
    conv = nn.Conv1d(2, 3, 3, dilation=2, padding=2)
    x = torch.zeros(1, 2, 5)
    # Output o reads inputs o-2, o, o+2 (5 outputs): input 0 is read by outputs 0 and 2,
    # input 2 by outputs 0, 2 and 4.
    x[0, 0, 0] = 1.0
    x[0, 1, 2] = 1.0
    row = only_layer(count_one_call(conv, x))
    assert row.sops == (2 + 3) * 3
    assert row.dense_macs == (3 * 5) * (2 * 3)


@pytest.mark.parametrize(
    ("mode", "position", "events"),
    [
        ("zeros", 0, 2),
        ("circular", 0, 3),  # wraps around: every input feeds 3 outputs
        ("replicate", 0, 3),  # padded [x0 x0 x1 x2 x3 x3]: x0 feeds output 0 twice and output 1
        ("reflect", 0, 2),  # padded [x1 x0 x1 x2 x3 x2]: x0 feeds outputs 0 and 1
        ("reflect", 1, 4),  # x1 appears twice: output 0 (twice), outputs 1 and 2
    ],
)
def test_conv1d_padding_modes(mode, position, events):
    conv = nn.Conv1d(1, 1, 3, padding=1, padding_mode=mode)
    row = only_layer(count_one_call(conv, single_spike((1, 1, 4), 0, 0, position)))
    assert row.sops == events


def brute_force_conv2d_events(conv, x):
    """Loop over samples, groups, outputs and kernel taps; count non-zero inputs read."""
    batch, channels, height, width = x.shape
    per_group = channels // conv.groups
    out_h, out_w = conv(x).shape[-2:]
    nonzero = (x != 0).tolist()
    (stride_h, stride_w), (pad_h, pad_w) = conv.stride, conv.padding
    (dil_h, dil_w), (k_h, k_w) = conv.dilation, conv.kernel_size
    events = 0
    for n, g, oh, ow, kh, kw in itertools.product(
        range(batch), range(conv.groups), range(out_h), range(out_w), range(k_h), range(k_w)
    ):
        ih, iw = oh * stride_h - pad_h + kh * dil_h, ow * stride_w - pad_w + kw * dil_w
        if 0 <= ih < height and 0 <= iw < width:
            group_channels = range(g * per_group, (g + 1) * per_group)
            events += sum(nonzero[n][c][ih][iw] for c in group_channels)
    return events * (conv.out_channels // conv.groups)


@pytest.mark.parametrize(
    ("stride", "padding", "dilation", "groups", "kernel"),
    [(1, 0, 1, 1, 3), (2, 1, 1, 2, 3), (3, 2, 2, 4, (3, 2)), (2, (0, 2), (1, 3), 1, (2, 3))],
)
def test_conv2d_sops_match_a_brute_force_loop(stride, padding, dilation, groups, kernel):
    conv = nn.Conv2d(4, 8, kernel, stride=stride, padding=padding, dilation=dilation, groups=groups)
    x = (torch.rand(2, 4, 7, 6) < 0.3).float()
    assert conv_sops(conv, x) == brute_force_conv2d_events(conv, x)


def test_unbatched_conv_input():
    conv = nn.Conv2d(1, 1, 3, padding=1)
    row = only_layer(count_one_call(conv, single_spike((1, 5, 5), 0, 0, 0)))
    assert (row.sops, row.dense_macs) == (4, 25 * 9)


def test_synaptic_matmul_counts_operand_a():
    matmul = SynapticMatmul()
    a = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    b = torch.randn(3, 4)
    row = only_layer(count_one_call(matmul, a, b))
    assert torch.equal(matmul(a, b), a @ b)
    assert (row.kind, row.input_elements, row.input_nonzero) == ("SynapticMatmul", 6, 3)
    assert row.dense_macs == 2 * 3 * 4
    assert row.sops == 3 * 4  # each spike of `a` reaches the 4 columns of `b`


def test_synaptic_matmul_broadcast_multiplies_the_fan_out():
    a = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    row = only_layer(count_one_call(SynapticMatmul(), a, torch.randn(5, 3, 4)))
    # `a` is used by all 5 matrices of `b`: 5 x (2 x 3 x 4) MACs, each spike reaches 5 x 4.
    assert (row.dense_macs, row.sops) == (120, 3 * 20)


@pytest.mark.parametrize(
    ("a_shape", "b_shape", "dense_macs", "fan_out"),
    [((3,), (3, 4), 12, 4), ((2, 3), (3,), 6, 1), ((3,), (3,), 3, 1)],
)
def test_synaptic_matmul_vectors(a_shape, b_shape, dense_macs, fan_out):
    a = torch.ones(a_shape)
    a.view(-1)[0] = 0.0
    row = only_layer(count_one_call(SynapticMatmul(), a, torch.randn(b_shape)))
    assert row.dense_macs == dense_macs
    assert row.sops == (a.numel() - 1) * fan_out


def test_synaptic_matmul_called_with_keywords():
    matmul = SynapticMatmul()
    a = torch.tensor([[1.0, 0.0, 1.0]])
    with EnergyCounter(matmul) as counter:
        matmul(b=torch.randn(3, 2), a=a)
    assert only_layer(counter.report(1)).sops == 2 * 2


def constant_drive(steps=4, batch=2):
    """Per feature a constant input of 0, 0.6 and 1.5 for `steps` steps.

    LIF with h = 0.5 u + x, threshold 1, hard reset: 0 never fires; 0.6 builds up
    0.6, 0.9, 1.05 (spike), 0.6: one spike in 4 steps; 1.5 fires at every step.
    """
    return torch.tensor([0.0, 0.6, 1.5]).expand(steps, batch, 3).clone()


def test_lif_firing_rate():
    net = TimeFirstNet()
    report = count_one_call(net, constant_drive(), samples=2)
    (neuron,) = report.neurons
    assert (neuron.name, neuron.kind, neuron.calls) == ("lif", "LIF", 1)
    assert neuron.spikes == 2 * (0 + 1 + 4)
    assert neuron.elements == 4 * 2 * 3
    assert neuron.firing_rate == pytest.approx(10 / 24)
    assert report.mean_firing_rate == pytest.approx(10 / 24)
    fc2 = report.layers[1]
    assert (fc2.name, fc2.binary, fc2.input_nonzero, fc2.sops) == ("fc2", True, 10, 10 * 2)


class ReturnsState(SpikingNeuron):
    """A streaming neuron layer: returns (spikes, state), as the function `lif` does."""

    def forward(self, x):
        return lif(x, LIFParameters(decay=0.5), time_dim=0)


def test_neuron_layer_returning_spikes_and_state():
    neuron = ReturnsState()
    x = constant_drive()
    with EnergyCounter(neuron) as counter:
        spikes, _ = neuron(x)
    rows = {row.name: row for row in counter.report(2).neurons}
    assert rows["(model)"].spikes == spikes.sum().item() == 10


def test_hooks_are_removed_and_outputs_unchanged():
    net = TimeFirstNet()
    x = constant_drive()
    before = net(x)
    with EnergyCounter(net) as counter:
        assert sum(len(m._forward_hooks) for m in net.modules()) == 3
        inside = net(x)
    after = net(x)
    assert sum(len(m._forward_hooks) for m in net.modules()) == 0
    assert torch.equal(before, inside) and torch.equal(before, after)
    assert counter.report(2).layers[0].calls == 1  # the call after exit was not counted


def test_hooks_are_removed_when_the_model_raises():
    fc = nn.Linear(3, 2)
    with pytest.raises(RuntimeError), EnergyCounter(fc):
        fc(torch.zeros(4))
    assert not fc._forward_hooks


def test_counting_keeps_gradients():
    net = TimeFirstNet()
    x = constant_drive()
    net(x).sum().backward()
    expected = net.fc2.weight.grad.clone()
    net.zero_grad()
    with EnergyCounter(net):
        net(x).sum().backward()
    assert torch.equal(net.fc2.weight.grad, expected)


class CallsOutOfOrder(nn.Module):
    def __init__(self):
        super().__init__()
        self.first_defined = nn.Linear(2, 2)
        self.called_first = nn.Linear(2, 2)

    def forward(self, x):
        return self.first_defined(self.called_first(x))


def test_layers_are_listed_in_first_call_order_and_accumulate():
    net = CallsOutOfOrder()
    with EnergyCounter(net) as counter:
        net(torch.ones(1, 2))
    with counter:  # a second block adds to the same counts
        net(torch.ones(3, 2))
    names = [row.name for row in counter.report(4).layers]
    assert names == ["called_first", "first_defined"]
    row = counter.report(4).layers[0]
    assert (row.calls, row.input_elements, row.sops) == (2, 8, 8 * 2)
    assert isinstance(row.sops, int) and isinstance(row.dense_macs, int)


def test_a_shared_module_is_counted_once_per_call():
    fc = nn.Linear(2, 2)
    net = nn.Sequential(fc, fc)
    row = only_layer(count_one_call(net, torch.tensor([[1.0, 0.0]])))
    assert (row.name, row.calls, row.input_elements) == ("0", 2, 4)


def test_measure_energy_counts_samples_along_batch_dim():
    net = TimeFirstNet()
    batches = [constant_drive(batch=2), constant_drive(batch=3)]
    report = measure_energy(net, batches, batch_dim=1)
    assert report.samples == 5
    assert report.neurons[0].spikes == 5 * 5
    assert report.layers[0].calls == 2
    assert all(p.grad is None for p in net.parameters())


def test_measure_energy_rejects_bad_batches():
    fc = nn.Linear(3, 2)
    with pytest.raises(ValueError, match="batch_dim 2 is out of range"):
        measure_energy(fc, [torch.zeros(4, 3)], batch_dim=2)
    with pytest.raises(ValueError, match="expected each batch to be a tensor"):
        measure_energy(fc, [[torch.zeros(4, 3)]])


def test_modules_that_are_not_counted_are_reported():
    net = nn.Sequential(nn.Conv3d(1, 1, 1), nn.Flatten(), nn.Linear(8, 1))
    report = count_one_call(net, torch.ones(1, 1, 2, 2, 2))
    assert report.uncounted == ("0 (Conv3d)",)
    assert [row.name for row in report.layers] == ["2"]
    assert "NOT COUNTED" in report.format_table()


def test_entering_an_active_counter_again_is_refused():
    counter = EnergyCounter(nn.Linear(1, 1))
    with counter, pytest.raises(RuntimeError, match="already active"), counter:
        pass


def test_model_must_be_a_module():
    with pytest.raises(ValueError, match="expected an nn.Module"):
        EnergyCounter(lambda x: x)


def test_a_module_can_declare_its_own_macs():
    from neurojoule.layers import S4D

    layer = S4D(2, S4DKernelConfig(d_state=4))  # 2 channels, N = 4: two complex modes
    with EnergyCounter(layer) as counter:
        layer(torch.randn(3, 2, 5))
    (row,) = counter.report(samples=3).layers
    # per step and channel: 2 modes x (4 for A h + 2 for B u + 2 for Re C h) + 1 for D u = 17
    assert row.dense_macs == 3 * 2 * 5 * 17
    assert not row.binary


def test_bidirectional_ssm_counts_both_directions():
    from neurojoule.layers import S4D

    layer = S4D(1, S4DKernelConfig(d_state=8, bidirectional=True))  # four modes per direction
    with EnergyCounter(layer) as counter:
        layer(torch.randn(1, 1, 10))
    assert counter.report(samples=1).layers[0].dense_macs == 10 * (2 * 4 * 8 + 1)
