"""The mapping between our discrete LIF and NIR's continuous one: the threshold convention,
the forward-Euler discretisation (checked against a plain loop of NIR's equations, written
here from the NIR definition), soft reset refused, no leak as IF."""

from __future__ import annotations

import nir
import numpy as np
import pytest
import torch

from neurojoule.export import nir_threshold, our_threshold
from neurojoule.export.nir_neurons import neuron_node
from neurojoule.neuron import LIF


def test_the_nudged_threshold_gives_the_same_spikes_for_every_float32():
    rng = np.random.default_rng(0)
    thresholds = np.concatenate(
        [np.float32([1.0, 0.5, 3.0, 1e-3, 7e5]), rng.uniform(0.01, 10, 200).astype(np.float32)]
    )
    nudged = nir_threshold(thresholds)
    assert np.array_equal(our_threshold(nudged), thresholds)  # the round trip is exact
    for theta, nir_theta in zip(thresholds, nudged, strict=True):
        up, down = np.nextafter(theta, np.float32(np.inf)), np.nextafter(theta, np.float32(0))
        potentials = np.float32([theta, up, down, np.nextafter(down, np.float32(0)), 0.0])
        # ours: h >= theta; NIR's: v > v_threshold
        assert np.array_equal(potentials >= theta, potentials > nir_theta)


def test_a_foreign_threshold_becomes_the_smallest_float32_above_it():
    between = float(np.float32(1.0)) + 2.0**-30  # a float64 between two float32 values
    assert our_threshold(np.array([1.0]))[0] == np.nextafter(np.float32(1), np.float32(2))
    assert our_threshold(np.array([between]))[0] == np.nextafter(np.float32(1), np.float32(2))
    ours = our_threshold(np.array([0.1]))[0]
    assert float(ours) > 0.1 > float(np.nextafter(ours, np.float32(0)))


def nir_lif_reference(node, currents: np.ndarray, dt: float) -> np.ndarray:
    """NIR's LIF, tau dv/dt = v_leak - v + R I, spike where v > v_threshold, then v = v_reset,
    stepped by forward Euler in float64 from v = 0: currents [T, N] -> spikes [T, N]."""
    v = np.zeros(currents.shape[1])
    spikes = []
    for current in currents:
        if isinstance(node, nir.IF):
            v = v + dt * node.r * current
        else:
            v = v + dt / node.tau * (node.v_leak - v + node.r * current)
        fired = v > node.v_threshold
        v = np.where(fired, node.v_reset, v)
        spikes.append(fired)
    return np.array(spikes, dtype=np.float64)


@pytest.mark.parametrize(
    "settings",
    [
        {"tau": 2.0, "v_threshold": 0.8},
        {"tau": 3.5, "v_threshold": 1.2, "v_reset": -0.25},
        {"decay": 0.125},
        {"decay": 0.6, "v_threshold": 0.5},
        {"decay": 1.0, "v_threshold": 2.0},  # no leak: NIR's IF
        {"decay": 0.3, "divide_by_threshold": True, "learn_threshold": True},
    ],
)
@pytest.mark.parametrize("dt", [1.0, 0.25])
def test_exported_neurons_follow_nir_equations_stepped_by_euler(settings, dt):
    torch.manual_seed(0)
    divide = settings.get("divide_by_threshold", False)
    extra = {"channels": 6, "channel_dim": -1} if settings.get("learn_threshold") else {}
    layer = LIF(time_dim=0, **settings, **extra)
    if extra:
        with torch.no_grad():
            layer.ln_vth.copy_(torch.linspace(-1, 1, 6))
    node = neuron_node(layer, (6,), dt, "lif")
    assert isinstance(node, nir.IF if settings.get("decay") == 1.0 else nir.LIF)
    x = torch.randn(40, 3, 6, dtype=torch.float64)
    ours = layer(x).detach().numpy()
    reference = np.stack([nir_lif_reference(node, x[:, b].numpy(), dt) for b in range(3)], 1)
    assert 0 < ours.mean() < 1
    # the same dynamics, rounded differently (our form vs Euler's) in float64
    assert np.array_equal(ours, reference), (ours != reference).sum()
    assert not divide or np.allclose(node.v_threshold, 1.0, rtol=1e-6)


def test_soft_reset_and_mixed_leaks_are_refused():
    with pytest.raises(ValueError, match="reset='soft'"):
        neuron_node(LIF(time_dim=0, tau=2.0, reset="soft"), (3,), 1.0, "soft")
    layer = LIF(time_dim=0, decay=0.5, channels=2, channel_dim=-1, learn_decay=True)
    with torch.no_grad():
        layer.decay_logit.copy_(torch.tensor([100.0, 0.0]))  # decay 1 and 0.5
    with pytest.raises(ValueError, match="decay 1"):
        neuron_node(layer, (2,), 1.0, "mixed")
