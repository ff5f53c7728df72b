"""The multiplication-free inference check: which synaptic layers received non-binary input."""

import pytest
import torch
from torch import nn

from neurojoule.energy import EnergyCounter
from neurojoule.neuron import LIF


def identity_pair():
    """Two Linear layers; the first is the identity, so the second sees the raw input too."""
    net = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2))
    with torch.no_grad():
        net[0].weight.copy_(torch.eye(4))
        net[0].bias.zero_()
    return net


def report_of(net, x):
    with EnergyCounter(net) as counter:
        net(x)
    return counter.report(x.shape[0])


# 3 of the 8 values are neither 0 nor 1 (0.5, 2 and -1); they span [-1, 2].
MIXED = torch.tensor([[0.5, 1.0, 0.0, 2.0], [0.0, -1.0, 1.0, 0.0]])


def test_non_binary_input_after_the_first_layer_refutes_mfi():
    check = report_of(identity_pair(), MIXED).mfi()
    assert not check.holds
    assert check.first_layer == "0"
    assert check.first_layer_excluded
    assert [entry.name for entry in check.layers] == ["0", "1"]
    (violation,) = check.violations
    assert violation.name == "1" and violation.kind == "Linear"
    assert violation.nonbinary_fraction == 3 / 8
    assert (violation.input_min, violation.input_max) == (-1.0, 2.0)
    assert check.verdict.startswith("MFI refuted")
    assert "reached 1" in check.verdict
    assert "1 (Linear): 37.50% non-binary, range [-1, 2]" in check.details()


def test_without_first_layer_exemption_the_first_layer_counts_too():
    check = report_of(identity_pair(), MIXED).mfi(exclude_first=False)
    assert not check.first_layer_excluded
    assert [entry.name for entry in check.violations] == ["0", "1"]


class SpikingPair(nn.Module):
    """encoder (real input) -> LIF -> classifier (spikes)."""

    def __init__(self):
        super().__init__()
        self.encoder = nn.Linear(4, 4)
        self.lif = LIF(time_dim=0, decay=0.5)
        self.classifier = nn.Linear(4, 2)

    def forward(self, x):
        return self.classifier(self.lif(self.encoder(x)))


def test_spikes_between_layers_satisfy_mfi_with_the_first_layer_exempt():
    report = report_of(SpikingPair(), torch.randn(3, 2, 4))
    check = report.mfi()
    assert check.holds and check.first_layer == "encoder" and check.first_layer_excluded
    assert check.verdict == (
        "MFI holds: every synaptic layer after the first (encoder) received binary input only"
    )
    strict = report.mfi(exclude_first=False)
    assert not strict.holds and [e.name for e in strict.violations] == ["encoder"]


def test_binary_first_layer_is_not_reported_as_excluded():
    check = report_of(identity_pair(), torch.tensor([[1.0, 0.0, 0.0, 1.0]])).mfi()
    assert check.holds and not check.layers and not check.first_layer_excluded


def test_one_non_binary_call_makes_a_layer_non_binary():
    net = nn.Linear(2, 2)
    with EnergyCounter(net) as counter:
        net(torch.tensor([[1.0, 0.0]] * 3))
        net(torch.tensor([[0.0, 0.25]]))
    (row,) = counter.report(4).layers
    assert not row.binary
    assert row.nonbinary_fraction == pytest.approx(1 / 8)
    assert (row.input_min, row.input_max) == (0.0, 1.0)
