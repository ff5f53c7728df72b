"""Neuron parameters of a trained network evolved with its weights frozen
(`neurojoule evolve neurons`).

The genes are log-scales: per LIF layer a factor on its thresholds and one on its time
constant (neuron.lif_layer.scale_neurons: every neuron of the layer alike, learned values
included), and for a direct-encoded image model a factor on T (rounded). CMA-ES (the `cma`
package) searches continuous factors from the trained setting (all factors 1) to minimise
fitness = E / E_0 + 100 x max(0, acc_0 - drop - acc), the energy per sample measured on the
validation split with accuracy kept within `max_accuracy_drop` of the trained network's;
NSGA-II (pymoo) searches factors from a grid on validation error and energy. Every setting
evaluated is kept; the result is the front of validation accuracy against energy, and the
fittest setting written as a checkpoint (the trained one with `neuron_scales` and T) that
`neurojoule eval` reads.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import pickle
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from neurojoule.neuron.lif_layer import NEURON_SCALES, lif_layers, scale_neurons
from neurojoule.search.command import search_splits, validation_batches
from neurojoule.search.objectives import Objectives, measure_objectives, pareto_front
from neurojoule.train.checkpoints import load_checkpoint, read_checkpoint, resolve_checkpoint
from neurojoule.train.evaluation import evaluate
from neurojoule.train.run_folder import RunFolder
from neurojoule.util.files import atomic_writer

GENES = (*NEURON_SCALES, "steps")
ALGORITHMS = ("cma-es", "nsga2")
SCALE_LIMIT = 4.0  # each factor within [1/4, 4]
GRID = (0.5, 0.75, 1.0, 1.25, 1.5, 2.0)  # the factors NSGA-II chooses from
STATE_FILE = "search.pkl"
CHOSEN_FILE = "chosen.ckpt"


@dataclass(frozen=True)
class NeuronSearch:
    """What to evolve and how: `genes` among GENES; `algorithm` CMA-ES (continuous factors,
    initial step size `sigma` in log-factor units) or NSGA-II (factors from GRID, on accuracy
    and energy), `population` settings for `generations` generations, measured on `val_limit`
    validation samples; the chosen setting keeps accuracy within `max_accuracy_drop` (a
    fraction: 0.005 is half a point) of the trained network's."""

    genes: tuple[str, ...] = ("threshold", "time")
    algorithm: str = "cma-es"
    population: int = 12
    generations: int = 15
    sigma: float = 0.3
    val_limit: int | None = 2000
    max_accuracy_drop: float = 0.005
    seed: int = 0
    shared: bool = False  # one factor per gene for every LIF layer alike, not one per layer

    def __post_init__(self):
        unknown = sorted(set(self.genes) - set(GENES))
        if unknown or not self.genes:
            raise ValueError(f"genes must be some of {list(GENES)}, got {list(self.genes)}")
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm must be one of {list(ALGORITHMS)}, got {self.algorithm}")
        for name in ("population", "generations"):
            if getattr(self, name) < 2:
                raise ValueError(f"{name} must be >= 2, got {getattr(self, name)}")
        if not (math.isfinite(self.sigma) and self.sigma > 0):
            raise ValueError(f"sigma must be a finite number > 0, got {self.sigma}")
        if not (0 <= self.max_accuracy_drop < 1):
            raise ValueError(f"max_accuracy_drop must be in [0, 1), got {self.max_accuracy_drop}")


class NeuronGenome:
    """The genes of one model: a vector of log-scales, its layers in model order (with
    `shared`, one factor per kind for every layer)."""

    def __init__(self, model: nn.Module, genes: tuple[str, ...], shared: bool = False):
        self.layers = list(lif_layers(model))
        kind = type(model).__name__
        if not self.layers and set(genes) & set(NEURON_SCALES):
            raise ValueError(f"{kind} has no LIF layers: it exposes no threshold or time constant")
        if "steps" in genes and not hasattr(model, "time_steps"):
            raise ValueError(
                f"{kind} has no direct-encoded time steps: gene 'steps' does not apply"
            )
        self.kinds = [k for k in NEURON_SCALES if k in genes]
        self.steps = int(model.time_steps) if "steps" in genes else None
        self.shared = shared
        groups = 1 if shared else len(self.layers)
        self.dim = groups * len(self.kinds) + (self.steps is not None)

    def decode(self, vector) -> dict:
        """{"scales": {layer: {kind: factor}}, "steps": T or None}, factors rounded to 4
        digits (the key settings are cached by)."""
        factors = np.exp(np.clip(np.asarray(vector, dtype=float), *_LOG_LIMITS))
        scales = {
            layer: {
                kind: round(float(factors[(0 if self.shared else i) * len(self.kinds) + j]), 4)
                for j, kind in enumerate(self.kinds)
            }
            for i, layer in enumerate(self.layers)
        }
        steps = None
        if self.steps is not None:
            steps = max(1, round(self.steps * float(factors[-1])))
        return {"scales": scales, "steps": steps}


_LOG_LIMITS = (-math.log(SCALE_LIMIT), math.log(SCALE_LIMIT))


def with_setting(model: nn.Module, setting: dict) -> nn.Module:
    """A copy of `model` with a decoded setting applied."""
    changed = copy.deepcopy(model)
    scale_neurons(changed, setting["scales"])
    if setting["steps"] is not None:
        changed.config = dataclasses.replace(changed.config, steps=setting["steps"])
    return changed.eval()


def _key(setting: dict) -> str:
    return json.dumps(setting, sort_keys=True)


class _Search:
    def __init__(self, checkpoint, search: NeuronSearch, folder: RunFolder):
        self.checkpoint, self.search, self.folder = checkpoint, search, folder
        self.config, _, self.model = load_checkpoint(checkpoint)
        self.genome = NeuronGenome(self.model, search.genes, search.shared)
        _, val = search_splits(self.config, search.val_limit)
        self.batches = validation_batches(val, self.config.optim.batch_size)
        self.cache: dict[str, dict] = {}
        self.trained = self.evaluate(self.genome.decode(np.zeros(self.genome.dim)))
        strategies = {"cma-es": CMAStrategy, "nsga2": GridNSGA2}
        self.es = strategies[search.algorithm](self.genome.dim, search)
        self.generation, self.seconds = 0, 0.0
        if folder.resume:
            self._load()

    def evaluate(self, setting: dict) -> dict:
        key = _key(setting)
        if key not in self.cache:
            objectives, _ = measure_objectives(with_setting(self.model, setting), self.batches)
            self.cache[key] = {"setting": setting, "objectives": objectives.to_dict()}
        return self.cache[key]

    def fitness(self, entry: dict) -> float:
        reference, values = self.trained["objectives"], entry["objectives"]
        floor = reference["accuracy"] - self.search.max_accuracy_drop
        shortfall = max(0.0, floor - values["accuracy"])
        return values["energy_uj"] / reference["energy_uj"] + 100.0 * shortfall

    def step(self) -> None:
        vectors = self.es.ask()
        entries = [self.evaluate(self.genome.decode(v)) for v in vectors]
        self.es.tell(entries, self.fitness)
        self.generation += 1

    def best(self) -> dict:
        return min(self.cache.values(), key=self.fitness)

    def save(self) -> None:
        state = {
            "search": dataclasses.asdict(self.search),
            "checkpoint": str(self.checkpoint),
            "es": self.es,
            "cache": self.cache,
            "numpy_random": np.random.get_state(),  # cma draws from numpy's global generator
            "generation": self.generation,
            "seconds": self.seconds,
        }
        with atomic_writer(self.folder.path / STATE_FILE, "wb") as handle:
            pickle.dump(state, handle)

    def _load(self) -> None:
        path = self.folder.path / STATE_FILE
        with open(path, "rb") as handle:
            state = pickle.load(handle)  # noqa: S301 (this search's own file)
        if state["search"] != dataclasses.asdict(self.search) or state["checkpoint"] != str(
            self.checkpoint
        ):
            raise ValueError(
                f"--resume: {self.folder.path} holds a search of {state['checkpoint']} with "
                f"other settings ({state['search']}); resume it with the same ones"
            )
        self.es, self.cache = state["es"], state["cache"]
        np.random.set_state(state["numpy_random"])
        self.generation, self.seconds = state["generation"], state["seconds"]


class CMAStrategy:
    """CMA-ES (the `cma` package) from every factor 1, minimising the search's fitness."""

    def __init__(self, dim: int, search: NeuronSearch):
        import cma

        # no `bounds` option (cma 4.x fails with it when a step size meets its limit): the
        # genome clips each factor to [1/4, 4] instead
        options = {"popsize": search.population, "seed": search.seed + 1, "verbose": -9}
        self.cma = cma.CMAEvolutionStrategy(np.zeros(dim), search.sigma, options)
        self._asked = None

    def ask(self) -> list[np.ndarray]:
        self._asked = self.cma.ask()
        return self._asked

    def tell(self, entries: list[dict], fitness) -> None:
        self.cma.tell(self._asked, [fitness(e) for e in entries])


class GridNSGA2:
    """NSGA-II (pymoo) over factors from GRID, on validation error and energy: a factor is
    an integer index into the grid (rounded crossover and mutation), duplicates removed."""

    def __init__(self, dim: int, search: NeuronSearch):
        from pymoo.algorithms.moo.nsga2 import NSGA2
        from pymoo.core.problem import Problem
        from pymoo.operators.crossover.sbx import SBX
        from pymoo.operators.mutation.pm import PM
        from pymoo.operators.repair.rounding import RoundingRepair
        from pymoo.operators.sampling.rnd import IntegerRandomSampling
        from pymoo.termination.max_gen import MaximumGenerationTermination

        self.problem = Problem(n_var=dim, n_obj=2, xl=0, xu=len(GRID) - 1, vtype=int)
        self.algorithm = NSGA2(
            pop_size=search.population,
            sampling=IntegerRandomSampling(),
            crossover=SBX(prob=0.9, eta=15, vtype=float, repair=RoundingRepair()),
            mutation=PM(eta=20, vtype=float, repair=RoundingRepair()),
            eliminate_duplicates=True,
        )
        termination = MaximumGenerationTermination(search.generations)
        self.algorithm.setup(self.problem, termination=termination, seed=search.seed + 1)
        self._asked = None

    def ask(self) -> list[np.ndarray]:
        self._asked = self.algorithm.ask()
        indices = np.rint(self._asked.get("X")).astype(int)
        return list(np.log(np.asarray(GRID))[indices])

    def tell(self, entries: list[dict], fitness) -> None:
        from pymoo.core.evaluator import Evaluator
        from pymoo.problems.static import StaticProblem

        values = [(1 - e["objectives"]["accuracy"], e["objectives"]["energy_uj"]) for e in entries]
        Evaluator().eval(StaticProblem(self.problem, F=np.array(values)), self._asked)
        self.algorithm.tell(infills=self._asked)


def evolve_neurons(
    checkpoint: str | Path, search: NeuronSearch, out: str | Path, resume: bool, progress: bool
) -> dict:
    """Search the neuron parameters of a trained checkpoint into the folder `out`; write the
    fittest setting as OUT/chosen.ckpt and test it and the trained network on the test split."""
    checkpoint = resolve_checkpoint(checkpoint)
    with _SearchFolder(out, resume) as folder:
        run = _Search(checkpoint, search, folder)
        while run.generation < search.generations:
            start = time.perf_counter()
            run.step()
            run.seconds += time.perf_counter() - start
            run.save()
            if progress:
                _report(run)
        best = run.best()
        chosen = folder.path / CHOSEN_FILE
        write_setting(checkpoint, best["setting"], chosen)
        before, after = (evaluate(path, whole_split=True) for path in (checkpoint, chosen))
    return _result(run, best, before, after, folder.path)


class _SearchFolder(RunFolder):
    """A run folder whose resumable state is search.pkl rather than a checkpoint."""

    @property
    def last(self) -> Path:
        return self.path / STATE_FILE


def write_setting(checkpoint: Path, setting: dict, out: Path) -> None:
    """The trained checkpoint with a setting: `neuron_scales` beside its config, T as its
    model option `steps`."""
    state = read_checkpoint(checkpoint)
    hparams = dict(state["hyper_parameters"])
    config = dict(hparams["config"])
    if setting["steps"] is not None:
        config["model_options"] = {**config.get("model_options", {}), "steps": setting["steps"]}
    hparams["config"], hparams["neuron_scales"] = config, setting["scales"]
    with atomic_writer(out, "wb") as handle:
        torch.save({**state, "hyper_parameters": hparams}, handle)


def _report(run: _Search) -> None:
    total = run.search.generations
    left = run.seconds / run.generation * (total - run.generation)
    best = run.best()["objectives"]
    print(
        f"generation {run.generation}/{total}: {len(run.cache)} settings evaluated; fittest "
        f"{best['accuracy']:.2%} at {best['energy_uj']:.4g} µJ (trained: "
        f"{run.trained['objectives']['accuracy']:.2%} at "
        f"{run.trained['objectives']['energy_uj']:.4g} µJ); {run.seconds:.0f} s, about "
        f"{left:.0f} s left",
        file=sys.stderr,
        flush=True,
    )


def _tested(result: dict) -> dict:
    totals = result["energy"].totals
    per_sample = result["energy"].per_sample
    return {
        "test_accuracy": result["accuracy"],
        "energy_uj": per_sample.snn_energy_j * 1e6,
        "spike_rate": result["mean_spike_rate"],
        "ann_snn_energy_ratio": totals.energy_ratio,
        "samples": result["samples"],
    }


def _entry(run: _Search, entry: dict) -> dict:
    values = entry["objectives"]
    return {
        "setting": entry["setting"],
        "val_accuracy": values["accuracy"],
        "energy_uj": values["energy_uj"],
        "spike_rate": values["spike_rate"],
        "fitness": run.fitness(entry),
    }


def _result(run: _Search, best: dict, before: dict, after: dict, out: Path) -> dict:
    entries = list(run.cache.values())
    points = [Objectives.from_dict(e["objectives"]) for e in entries]
    front = [_entry(run, entries[i]) for i in pareto_front(points, ("error", "energy"))]
    front.sort(key=lambda e: e["energy_uj"])
    return {
        "model": run.config.model,
        "task": run.config.task,
        "checkpoint": str(run.checkpoint),
        "algorithm": run.search.algorithm,
        "space": None,
        "evaluated_noun": "neuron settings",
        "settings": {**dataclasses.asdict(run.search), "genes": list(run.search.genes)},
        "generations": run.generation,
        "evaluated": len(entries),
        "seconds": run.seconds,
        "validation": {"samples": points[0].samples, "table": "45nm"},
        "points": [(p.energy_uj, p.accuracy) for p in points],
        "front": front,
        "reference": {**_entry(run, run.trained), "name": "trained", "label": "trained network"},
        "best": {**_entry(run, best), "checkpoint": str(out / CHOSEN_FILE)},
        "before": _tested(before),
        "after": _tested(after),
    }


def format_neuron_result(result: dict) -> str:
    """The front as a table, then the trained and the chosen network on the test split."""
    lines = [
        f"{result['algorithm']} on the neuron parameters of {result['model']} ({result['task']}): "
        f"{result['generations']} generations, {result['evaluated']} settings evaluated in "
        f"{result['seconds']:.0f} s on {result['validation']['samples']} validation samples",
        f"front (validation accuracy against energy per sample): {len(result['front'])} settings",
        f"{'#':>3}  {'val acc':>8}  {'energy µJ':>10}  {'spike rate':>10}  setting",
    ]
    for i, entry in enumerate(result["front"], 1):
        lines.append(
            f"{i:>3}  {entry['val_accuracy']:>8.2%}  {entry['energy_uj']:>10.4g}  "
            f"{entry['spike_rate']:>10.2%}  {_short(entry['setting'])}"
        )
    for name in ("before", "after"):
        tested = result[name]
        what = "trained" if name == "before" else "chosen "
        lines.append(
            f"{what} (test, {tested['samples']} samples): accuracy {tested['test_accuracy']:.2%}, "
            f"{tested['energy_uj']:.4g} µJ per sample, spike rate {tested['spike_rate']:.2%}, "
            f"ANN/SNN energy {tested['ann_snn_energy_ratio']:.2f}x"
        )
    lines.append(f"chosen setting written to {result['best']['checkpoint']}")
    return "\n".join(lines)


def _short(setting: dict) -> str:
    """The range of each factor over the layers, and T: 'threshold x0.8-1.6, T 3'."""
    parts = []
    for kind in NEURON_SCALES:
        factors = [v[kind] for v in setting["scales"].values() if kind in v]
        if factors:
            parts.append(f"{kind} x{min(factors):g}-{max(factors):g}")
    if setting["steps"] is not None:
        parts.append(f"T {setting['steps']}")
    return ", ".join(parts)
