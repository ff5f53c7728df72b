"""Energy totals, per-sample figures, JSON and the text table, checked against hand sums."""

import json
import math

import pytest
import torch
from time_first_net import TimeFirstNet
from torch import nn

from neurojoule.energy import EnergyCounter, EnergyReport, get_energy_table, measure_energy


def measured(table="45nm"):
    """4 steps x 2 samples of the inputs 0, 0.6, 1.5: the LIF fires 0, 1 and 4 times each.

    fc1: 24 real-valued inputs x 3 outputs = 72 MACs.
    fc2: 24 binary inputs of which 2 x 5 = 10 spikes; 48 dense MACs, 10 x 2 = 20 SOPs.
    """
    x = torch.tensor([0.0, 0.6, 1.5]).expand(4, 2, 3).clone()
    return measure_energy(TimeFirstNet(), [x], table=table, batch_dim=1)


def test_totals_by_hand():
    report = measured()
    totals = report.totals
    assert (totals.real_input_macs, totals.sops, totals.dense_macs) == (72, 20, 120)
    assert (totals.spikes, totals.neuron_elements) == (10, 24)
    assert totals.snn_energy_j == pytest.approx((72 * 4.6 + 20 * 0.9) * 1e-12)
    assert totals.ann_energy_j == pytest.approx(120 * 4.6 * 1e-12)
    assert report.energy_ratio == pytest.approx(552 / 349.2)
    fc1, fc2 = report.layers
    assert report.layer_energy_j(fc1) == pytest.approx((331.2e-12, 72 * 4.6e-12))
    assert report.layer_energy_j(fc2) == pytest.approx((18e-12, 48 * 4.6e-12))


def test_per_sample_divides_by_samples():
    per_sample = measured().per_sample
    assert per_sample.snn_energy_j == pytest.approx(349.2e-12 / 2)
    assert per_sample.ann_energy_j == pytest.approx(552e-12 / 2)
    assert (per_sample.sops, per_sample.spikes) == (10, 5)


def test_a_direct_encoding_model_is_compared_with_one_ann_pass():
    """The 4 steps repeat one input: the same-shape ANN computes 120 / 4 = 30 MACs once, and
    fc1, which sees the same input at every step, is priced once: 72 / 4 = 18 MACs."""
    x = torch.tensor([0.0, 0.6, 1.5]).expand(4, 2, 3).clone()
    model = TimeFirstNet()
    model.time_steps = 4  # a model declares its steps; an explicit argument wins
    for report in (
        measure_energy(model, [x], batch_dim=1),
        measure_energy(TimeFirstNet(), [x], batch_dim=1, time_steps=4),
    ):
        assert report.time_steps == 4
        assert report.totals.dense_macs == 120  # what the SNN's layers saw, all steps
        assert report.totals.ann_energy_j == pytest.approx(30 * 4.6 * 1e-12)
        assert report.totals.real_input_macs == 18 and report.totals.sops == 20
        assert report.totals.snn_energy_j == pytest.approx((18 * 4.6 + 20 * 0.9) * 1e-12)
        assert "computed once" in report.format_table()
    with pytest.raises(ValueError, match="time_steps must be >= 1"):
        measure_energy(TimeFirstNet(), [x], batch_dim=1, time_steps=0)


def test_custom_table_prices_the_same_counts():
    report = measured("mac=1,ac=0.5")
    assert report.totals.snn_energy_j == pytest.approx((72 * 1 + 20 * 0.5) * 1e-12)
    assert report.table == get_energy_table("mac=1,ac=0.5")


def test_json_round_trip():
    report = measured()
    data = report.to_dict()
    assert {"table", "samples", "layers", "neurons", "totals", "mfi"} <= data.keys()
    assert json.loads(json.dumps(data, allow_nan=False)) == data
    assert data["table"] == {"name": "45nm", "mac_pj": 4.6, "ac_pj": 0.9}
    assert [layer["name"] for layer in data["layers"]] == ["fc1", "fc2"]
    assert data["layers"][1]["binary"] and data["layers"][1]["sops"] == 20
    assert data["neurons"][0]["firing_rate"] == pytest.approx(10 / 24)
    assert data["totals"]["per_sample"]["sops"] == 10
    assert data["mfi"]["holds"] and data["mfi"]["first_layer"] == "fc1"


def test_silent_network_has_no_finite_ratio_and_stays_valid_json():
    fc = nn.Linear(3, 2)
    report = measure_energy(fc, [torch.zeros(2, 3)])
    assert report.totals.snn_energy_j == 0
    assert report.energy_ratio == math.inf
    data = report.to_dict()
    assert data["totals"]["energy_ratio"] is None
    assert data["totals"]["mean_firing_rate"] is None
    json.dumps(data, allow_nan=False)


def test_format_table_lists_layers_neurons_totals_and_verdict():
    text = measured().format_table()
    lines = text.splitlines()
    for expected in ("fc1", "fc2", "Linear", "41.67%", "ANN/SNN = 1.58x", "MFI holds"):
        assert expected in text
    assert any(line.startswith("lif") and "LIF" in line for line in lines)
    assert "175 pJ" in text  # 349.2 pJ / 2 samples
    header = next(i for i, line in enumerate(lines) if line.startswith("layer"))
    block = lines[header : header + 4]
    assert len({len(line) for line in block}) == 1  # fixed width


def test_report_needs_samples_and_records():
    counter = EnergyCounter(nn.Linear(2, 2))
    with pytest.raises(ValueError, match="at least one synaptic or neuron layer"):
        counter.report(1)
    report = measured()
    with pytest.raises(ValueError, match="samples must be >= 1, got 0"):
        EnergyReport(report.table, 0, report.layers, report.neurons)
