"""What a search optimises: the objectives of a subnet and the fitness that ranks subnets.

Objectives are measured on the validation split (held out of the training data; the test
split is never seen by a search): top-1 accuracy, the SNN energy per sample from the energy
counter on real batches with the batch norms folded (the model as deployed, priced as
`neurojoule eval` prices it), the parameter count and the time steps T. As minimised
objectives they are `error` (1 - accuracy), `energy` (µJ per sample), `params` and `steps`.

Single-objective search ranks subnets by a fitness (higher is better):

- the accuracy-energy balanced fitness (AEB), acc x (E / E_ref)^lambda with lambda = -0.08
  and E_ref the energy of the space's largest subnet: a subnet that spends less energy than
  the reference is rewarded, one that spends more is penalised, gently;
- or a weighting of the objectives normalised by the same reference subnet:
  w_accuracy x acc - w_energy x E / E_ref - w_params x P / P_ref - w_steps x T / T_ref.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields

import torch
from torch import nn

from neurojoule.energy import EnergyCounter, EnergyReport, fold_batchnorm
from neurojoule.train.finite import check_finite, explain_non_finite

AEB_LAMBDA = -0.08
OBJECTIVES = ("error", "energy", "params", "steps")  # minimised
WEIGHT_KEYS = ("accuracy", "energy", "params", "steps")


@dataclass(frozen=True)
class Objectives:
    """What one subnet measured on the validation batches."""

    accuracy: float  # top-1, in [0, 1]
    energy_uj: float  # SNN energy per sample, µJ (45 nm table unless told otherwise)
    params: int
    steps: int  # time steps T
    samples: int
    spike_rate: float | None  # mean firing rate over the neuron layers
    training: dict | None = None  # a trained candidate's record (search.trained)

    def value(self, name: str) -> float:
        """A minimised objective by name (see OBJECTIVES)."""
        if name == "error":
            return 1.0 - self.accuracy
        if name == "energy":
            return self.energy_uj
        if name == "params":
            return float(self.params)
        if name == "steps":
            return float(self.steps)
        raise ValueError(f"unknown objective {name!r}; expected one of {list(OBJECTIVES)}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping) -> Objectives:
        names = [f.name for f in fields(cls)]
        given = set(values) | {"training"} if isinstance(values, Mapping) else set()
        if given != set(names):
            raise ValueError(f"objectives have the keys {names}, got {_keys(values)}")
        return cls(**{name: values[name] for name in names if name in values})


@torch.no_grad()
def measure_objectives(
    model: nn.Module, batches: Iterable, table: str = "45nm"
) -> tuple[Objectives, EnergyReport]:
    """The objectives of `model` (in eval mode) on `batches` of (inputs, labels), and the
    energy report they come from: the model is run as deployed, its batch norms folded into
    the synapses (on a copy), with an EnergyCounter over every batch."""
    params = sum(p.numel() for p in model.parameters())
    deployed = fold_batchnorm(model)
    device = next(iter(model.parameters()), torch.empty(0)).device
    correct = total = 0
    with EnergyCounter(deployed, table=table) as counter:
        for x, y in batches:
            x, y = x.to(device), y.to(device)
            check_finite(x, "a validation batch's input")
            logits = deployed(x)
            if not torch.isfinite(logits).all():
                raise explain_non_finite(deployed, x, "logits", "on the validation split")
            correct += int((logits.argmax(-1) == y).sum())
            total += len(y)
    if total == 0:
        raise ValueError("no validation samples: expected at least one batch of (inputs, labels)")
    report = counter.report(samples=total)
    objectives = Objectives(
        accuracy=correct / total,
        energy_uj=report.per_sample.snn_energy_j * 1e6,
        params=params,
        steps=int(getattr(model, "time_steps", 1)),
        samples=total,
        spike_rate=report.mean_firing_rate,
    )
    return objectives, report


def aeb_fitness(
    accuracy: float, energy: float, reference_energy: float, lam: float = AEB_LAMBDA
) -> float:
    """The accuracy-energy balanced fitness, accuracy x (energy / reference_energy)^lam."""
    if not (energy > 0 and reference_energy > 0):
        raise ValueError(
            f"the AEB fitness needs positive energies, got {energy} and reference "
            f"{reference_energy}"
        )
    return accuracy * (energy / reference_energy) ** lam


@dataclass(frozen=True)
class Fitness:
    """How a single-objective search ranks subnets (higher is better): the AEB fitness with
    `lam`, or, given `weights` (keys among WEIGHT_KEYS), the weighted sum of the objectives
    normalised by `reference`, the largest subnet's objectives."""

    reference: Objectives
    lam: float = AEB_LAMBDA
    weights: Mapping[str, float] | None = None

    def __post_init__(self):
        if self.weights is not None:
            object.__setattr__(self, "weights", check_weights(self.weights))

    def __call__(self, objectives: Objectives) -> float:
        if self.weights is None:
            return aeb_fitness(
                objectives.accuracy, objectives.energy_uj, self.reference.energy_uj, self.lam
            )
        total = 0.0
        for name, weight in self.weights.items():
            if name == "accuracy":
                total += weight * objectives.accuracy
            else:
                reference = self.reference.value(name)
                if not reference > 0:
                    raise ValueError(f"the reference subnet's {name} is {reference}; expected > 0")
                total -= weight * objectives.value(name) / reference
        return total

    def describe(self) -> str:
        if self.weights is None:
            return (
                f"AEB fitness acc x (E / {self.reference.energy_uj:.4g} µJ)^{self.lam:g} "
                "(E_ref: the largest subnet)"
            )
        parts = [
            f"{w:g} x accuracy" if k == "accuracy" else f"-{w:g} x {k} / {k}_ref"
            for k, w in self.weights.items()
        ]
        return f"weighted fitness {' + '.join(parts)} (ref: the largest subnet)"

    def to_dict(self) -> dict:
        kind = "aeb" if self.weights is None else "weighted"
        return {
            "kind": kind,
            "lambda": self.lam if self.weights is None else None,
            "weights": None if self.weights is None else dict(self.weights),
            "reference": self.reference.to_dict(),
        }


def check_weights(weights: Mapping) -> dict[str, float]:
    """Weights keyed by WEIGHT_KEYS, finite, >= 0, not all zero; a one-line ValueError else."""
    if not isinstance(weights, Mapping) or not weights:
        raise ValueError(f"weights map some of {list(WEIGHT_KEYS)} to numbers, got {weights!r}")
    unknown = sorted(map(str, set(weights) - set(WEIGHT_KEYS)))
    if unknown:
        raise ValueError(f"unknown weights {unknown}; expected some of {list(WEIGHT_KEYS)}")
    checked = {}
    for name in WEIGHT_KEYS:
        if name in weights:
            value = weights[name]
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"weight {name} must be a number, got {value!r}")
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"weight {name} must be finite and >= 0, got {value}")
            checked[name] = float(value)
    if not any(checked.values()):
        raise ValueError("at least one weight must be positive")
    return checked


def parse_weights(text: str) -> dict[str, float]:
    """'accuracy=1,energy=0.1' as checked weights."""
    weights = {}
    for part in text.split(","):
        name, sep, value = part.partition("=")
        try:
            weights[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep:
            raise ValueError(f"expected weights as NAME=NUMBER,..., got {text!r}")
    return check_weights(weights)


def check_objectives(names: Sequence[str]) -> tuple[str, ...]:
    """Names of minimised objectives: at least one, known, without repeats."""
    names = tuple(names)
    unknown = [n for n in names if n not in OBJECTIVES]
    if not names or unknown or len(set(names)) != len(names):
        raise ValueError(
            f"objectives must be distinct names among {list(OBJECTIVES)}, got {list(names)}"
        )
    return names


def pareto_front(points: Sequence[Objectives], names: Sequence[str]) -> list[int]:
    """Indices of the points that no other point dominates in the minimised objectives
    `names` (equal points are all kept), in their given order."""
    vectors = [tuple(p.value(n) for n in names) for p in points]

    def dominates(a, b) -> bool:
        return all(x <= y for x, y in zip(a, b, strict=True)) and a != b

    return [i for i, v in enumerate(vectors) if not any(dominates(w, v) for w in vectors)]


def _keys(values: object) -> object:
    return sorted(map(str, values)) if isinstance(values, Mapping) else type(values).__name__
