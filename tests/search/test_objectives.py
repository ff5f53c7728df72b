"""Objectives and fitness: the AEB and weighted fitness against hand computations, the
measured energy against an energy counter run by hand on the folded model, the Pareto front
against pymoo's non-dominated sorting."""

import random

import numpy as np
import pytest
import torch
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting
from search_fixtures import tiny_batches, tiny_space, tiny_supernet

from neurojoule.energy import EnergyCounter, fold_batchnorm
from neurojoule.models import build_model
from neurojoule.search.objectives import (
    Fitness,
    Objectives,
    aeb_fitness,
    measure_objectives,
    pareto_front,
    parse_weights,
)


def objectives(accuracy, energy, params=1000, steps=4):
    return Objectives(accuracy, energy, params, steps, samples=100, spike_rate=0.1)


def test_aeb_fitness_by_hand():
    # half the reference energy: 0.9 x 0.5^-0.08 = 0.9 x 2^0.08
    assert aeb_fitness(0.9, 40.0, 80.0) == pytest.approx(0.9 * 2**0.08, rel=1e-12)
    assert aeb_fitness(0.9, 80.0, 80.0) == pytest.approx(0.9)
    assert aeb_fitness(0.9, 160.0, 80.0, lam=-0.5) == pytest.approx(0.9 / 2**0.5)
    fitness = Fitness(reference=objectives(0.95, 80.0))
    assert fitness(objectives(0.9, 40.0)) == pytest.approx(0.9 * 2**0.08, rel=1e-12)
    with pytest.raises(ValueError, match="positive energies"):
        aeb_fitness(0.9, 0.0, 80.0)


def test_weighted_fitness_by_hand():
    reference = objectives(0.9, 80.0, params=1000, steps=4)
    weights = {"accuracy": 1, "energy": 0.5, "params": 0.25, "steps": 0.1}
    fitness = Fitness(reference=reference, weights=weights)
    # 0.8 - 0.5 x 20/80 - 0.25 x 500/1000 - 0.1 x 2/4
    assert fitness(objectives(0.8, 20.0, params=500, steps=2)) == pytest.approx(0.5)
    assert parse_weights("accuracy=1, energy=0.5,params=0.25,steps=0.1") == weights
    for bad in ("accuracy", "speed=1", "energy=-1", "accuracy=nan", "accuracy=0"):
        with pytest.raises(ValueError) as error:
            parse_weights(bad)
        assert "\n" not in str(error.value)


def test_measured_energy_is_the_counters_on_the_folded_model():
    space = tiny_space()
    elastic = tiny_supernet(space)
    batches = tiny_batches(count=2, size=8)
    subnet = space.extreme(largest=True)
    model = elastic.extract(subnet).eval()
    measured, report = measure_objectives(model, batches)

    deployed = fold_batchnorm(model)
    assert any(isinstance(m, torch.nn.BatchNorm1d) for m in model.modules())  # untouched
    correct = 0
    with torch.no_grad(), EnergyCounter(deployed, table="45nm") as counter:
        for x, y in batches:
            correct += int((deployed(x).argmax(-1) == y).sum())
    expected = counter.report(samples=16)
    assert measured.energy_uj == expected.per_sample.snn_energy_j * 1e6
    assert measured.energy_uj > 0
    assert measured.accuracy == correct / 16
    assert measured.spike_rate == expected.mean_firing_rate
    assert report.to_dict() == expected.to_dict()
    options = {**elastic.largest, **subnet}
    registry_model = build_model(space.model, **options)
    assert measured.params == sum(p.numel() for p in registry_model.parameters())
    assert measured.steps == subnet["steps"] == 3


def test_pareto_front_is_pymoos_first_front():
    rng = random.Random(3)
    for _ in range(20):
        points = [
            objectives(
                rng.choice([0.5, 0.6, 0.7, 0.8]), float(rng.randint(1, 6)), rng.randint(1, 4)
            )
            for _ in range(30)
        ]
        for names in (("error", "energy"), ("error", "energy", "params")):
            F = np.array([[p.value(n) for n in names] for p in points])
            expected = NonDominatedSorting().do(F, only_non_dominated_front=True)
            assert sorted(pareto_front(points, names)) == sorted(expected.tolist())
