"""Accumulate-only synapses against the dense layers they replace."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from neurojoule.energy import (
    AccumulateConv,
    AccumulateConv1d,
    AccumulateConv2d,
    AccumulateLinear,
    EnergyCounter,
    accumulate_only,
)
from neurojoule.neuron import LIF

TOLERANCE = {torch.float32: 1e-5, torch.float64: 1e-12}
DTYPES = [torch.float32, torch.float64]


def spikes(*shape, dtype=torch.float32, rate=0.3):
    return (torch.rand(shape) < rate).to(dtype)


def assert_close(actual, expected):
    tolerance = TOLERANCE[expected.dtype]
    torch.testing.assert_close(actual, expected, atol=tolerance, rtol=tolerance)


@pytest.fixture
def no_dense_ops(monkeypatch):
    """Make the dense kernels unusable, so a forward that needs them fails."""

    def refuse(*args, **kwargs):
        raise AssertionError("a dense kernel was called")

    for module, name in [
        (F, "linear"),
        (F, "conv1d"),
        (F, "conv2d"),
        (torch, "matmul"),
        (torch, "mm"),
        (torch, "bmm"),
        (torch, "einsum"),
    ]:
        monkeypatch.setattr(module, name, refuse)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(7,), (5, 7), (2, 3, 7), (0, 7)])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_matches_the_dense_layer(dtype, shape, bias):
    dense = nn.Linear(7, 4, bias=bias).to(dtype)
    x = spikes(*shape, dtype=dtype)
    expected = F.linear(x, dense.weight, dense.bias)
    layer = AccumulateLinear.from_dense(dense)
    assert isinstance(layer, nn.Linear) and layer.weight is dense.weight
    assert_close(layer(x), expected)


CONV2D_GEOMETRIES = [
    dict(kernel_size=3),
    dict(kernel_size=3, stride=2, padding=1),
    dict(kernel_size=(2, 3), stride=(1, 2), padding=(1, 0), dilation=(2, 1)),
    dict(kernel_size=1),
    dict(kernel_size=4, padding="same", dilation=2),
    dict(kernel_size=(2, 3), padding="same"),  # asymmetric padding along H
    dict(kernel_size=5, stride=3, padding=2, dilation=2),
]


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("geometry", CONV2D_GEOMETRIES)
def test_conv2d_matches_the_dense_layer(dtype, geometry):
    dense = nn.Conv2d(3, 5, **geometry).to(dtype)
    x = spikes(2, 3, 9, 8, dtype=dtype)
    expected = F.conv2d(x, dense.weight, dense.bias, dense.stride, dense.padding, dense.dilation)
    layer = AccumulateConv.from_dense(dense)
    assert isinstance(layer, AccumulateConv2d) and isinstance(layer, nn.Conv2d)
    assert_close(layer(x), expected)
    assert_close(layer(x[0]), expected[0])  # unbatched input


CONV1D_GEOMETRIES = [
    dict(kernel_size=3),
    dict(kernel_size=3, stride=2, padding=2, dilation=3),
    dict(kernel_size=2, padding="same"),  # asymmetric padding
    dict(kernel_size=1, stride=3, bias=False),
]


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("geometry", CONV1D_GEOMETRIES)
def test_conv1d_matches_the_dense_layer(dtype, geometry):
    dense = nn.Conv1d(4, 3, **geometry).to(dtype)
    x = spikes(3, 4, 11, dtype=dtype)
    expected = F.conv1d(x, dense.weight, dense.bias, dense.stride, dense.padding, dense.dilation)
    layer = AccumulateConv.from_dense(dense)
    assert isinstance(layer, AccumulateConv1d) and isinstance(layer, nn.Conv1d)
    assert_close(layer(x), expected)
    assert_close(layer(x[1]), expected[1])


def test_all_zero_and_all_one_inputs():
    dense = nn.Conv2d(2, 3, 3, padding=1).double()
    layer = AccumulateConv.from_dense(dense)
    for x in (torch.zeros(1, 2, 4, 4, dtype=torch.float64), torch.ones(1, 2, 4, 4).double()):
        assert_close(layer(x), dense(x))


def test_boolean_spikes_are_accepted():
    dense = nn.Linear(5, 2)
    x = spikes(3, 5) > 0
    assert_close(AccumulateLinear.from_dense(dense)(x), dense(x.float()))


def test_forward_uses_no_dense_kernel(no_dense_ops):
    linear = AccumulateLinear.from_dense(nn.Linear(6, 3))
    conv1 = AccumulateConv.from_dense(nn.Conv1d(2, 3, 3, padding=1))
    conv2 = AccumulateConv.from_dense(nn.Conv2d(2, 3, 3, stride=2))
    assert linear(spikes(4, 6)).shape == (4, 3)
    assert conv1(spikes(4, 2, 5)).shape == (4, 3, 5)
    assert conv2(spikes(4, 2, 5, 5)).shape == (4, 3, 2, 2)


@pytest.mark.parametrize(
    "layer, x",
    [
        (AccumulateLinear.from_dense(nn.Linear(3, 2)), torch.tensor([[0.0, 0.5, 2.0]])),
        (AccumulateConv.from_dense(nn.Conv1d(1, 1, 1)), torch.tensor([[[1.0, 0.5, 2.0]]])),
        (AccumulateConv.from_dense(nn.Conv2d(1, 1, 1)), torch.tensor([[[[0.0, 0.5, 2.0]]]])),
    ],
)
def test_non_binary_input_raises_with_its_range(layer, x):
    with pytest.raises(ValueError, match=r"expects binary input .* 2 other values in \[0.5, 2\]"):
        layer(x)


def test_wrong_shape_raises():
    with pytest.raises(ValueError, match="expects input"):
        AccumulateLinear.from_dense(nn.Linear(3, 2))(torch.zeros(2, 4))
    with pytest.raises(ValueError, match="expects input"):
        AccumulateConv.from_dense(nn.Conv2d(3, 2, 1))(torch.zeros(2, 4, 5, 5))


@pytest.mark.parametrize(
    "conv",
    [
        lambda: nn.Conv2d(4, 4, 3, groups=2),
        lambda: nn.Conv1d(2, 2, 3, padding=1, padding_mode="reflect"),
        lambda: nn.Conv2d(4, 4, 3, groups=4, padding_mode="circular"),
    ],
)
def test_unsupported_convolutions_raise(conv):
    with pytest.raises(ValueError, match="groups=1 and padding_mode='zeros'"):
        AccumulateConv.from_dense(conv())


class SpikingNet(nn.Module):
    """Time-first [T, B, 2, 6, 6]: conv (real input) -> LIF -> conv -> LIF -> fc -> LIF -> fc.

    `grouped` sees spikes too, but groups=2 has no accumulate-only form; `unused` never runs.
    """

    def __init__(self):
        super().__init__()
        self.encoder = nn.Conv2d(2, 4, 3, padding=1)
        self.lif1 = LIF(time_dim=0, decay=0.5)
        self.conv = nn.Sequential(nn.Conv2d(4, 4, 3, stride=2, padding=1))
        self.grouped = nn.Conv2d(4, 4, 1, stride=2, groups=2)
        self.lif2 = LIF(time_dim=0, decay=0.5)
        self.fc1 = nn.Linear(4 * 3 * 3, 8)
        self.lif3 = LIF(time_dim=0, decay=0.5)
        self.fc2 = nn.Linear(8, 3)
        self.unused = nn.Linear(3, 3)

    def forward(self, x):
        s = self.lif1(self.per_step(self.encoder, x) * 2)
        s = self.lif2(self.per_step(self.conv, s) + self.per_step(self.grouped, s))
        s = self.lif3(self.fc1(s.flatten(2)) * 2)
        return self.fc2(s).mean(0)

    @staticmethod
    def per_step(module, x):
        return module(x.flatten(0, 1)).unflatten(0, x.shape[:2])


def test_accumulate_only_network_matches_the_dense_one():
    model = SpikingNet().double()
    x = torch.randn(4, 5, 2, 6, 6, dtype=torch.float64)
    converted, replaced, dense = accumulate_only(model, x)
    assert replaced == ["conv.0", "fc1", "fc2"]
    assert dense == ["encoder", "grouped", "unused"]
    assert type(model.encoder) is nn.Conv2d and type(model.fc2) is nn.Linear  # original kept
    assert type(converted.encoder) is nn.Conv2d
    assert isinstance(converted.conv[0], AccumulateConv2d)
    assert isinstance(converted.fc1, AccumulateLinear)
    with torch.no_grad():
        assert_close(converted(x), model.eval()(x))


def test_energy_counter_counts_accumulate_layers_like_dense_ones():
    model = SpikingNet().eval()
    x = torch.randn(4, 5, 2, 6, 6)
    converted = accumulate_only(model, x).model
    reports = []
    for net in (model, converted):
        with EnergyCounter(net) as counter, torch.no_grad():
            net(x)
        reports.append(counter.report(samples=5))
    dense_rows, accumulate_rows = (report.layers for report in reports)
    assert [r.name for r in dense_rows] == [r.name for r in accumulate_rows]
    for before, after in zip(dense_rows, accumulate_rows, strict=True):
        assert (before.sops, before.dense_macs) == (after.sops, after.dense_macs)
    kinds = {row.name: row.kind for row in accumulate_rows}
    assert kinds == {
        "encoder": "Conv2d",
        "conv.0": "AccumulateConv2d",
        "grouped": "Conv2d",
        "fc1": "AccumulateLinear",
        "fc2": "AccumulateLinear",
    }
    assert all(row.sops > 0 for row in accumulate_rows)
    assert reports[1].mfi().holds


class Step(nn.Module):
    def forward(self, x):
        return (x > 0).to(x.dtype)


def test_a_shared_layer_is_replaced_everywhere():
    shared = nn.Linear(4, 4)
    model = nn.Sequential(shared, Step(), nn.Sequential(shared))
    converted, replaced, _ = accumulate_only(model, spikes(3, 4))
    assert replaced == ["0"]
    assert converted[0] is converted[2][0] and isinstance(converted[0], AccumulateLinear)


def test_events_summed_in_several_chunks_give_the_same_output(monkeypatch):
    monkeypatch.setattr("neurojoule.energy.accumulate._MAX_GATHERED_ELEMENTS", 8)
    dense = nn.Conv2d(3, 4, 3, padding=1).double()
    x = spikes(2, 3, 5, 5, dtype=torch.float64, rate=0.5)
    assert_close(AccumulateConv.from_dense(dense)(x), dense(x))
