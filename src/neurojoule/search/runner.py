"""A search run: an algorithm and an evaluator, a folder that holds every finished generation,
progress with the time left, and the result (the front, the fittest subnet, the reference).

The folder `out` holds `search.json`, rewritten atomically after every generation with all
that the next generation depends on: the settings, the evaluator's cache (subnet ->
objectives), the algorithm's state (population or archive, and its random generator's state)
and the history. `resume=True` loads it and continues: a search killed at any moment (kill -9
included) and resumed ends with the same front as one never stopped, on the same machine.
At the end `front.json` (the result) and `front.png` (accuracy against energy) are written
beside it. Under torchrun every rank runs the search; rank 0 alone writes and prints.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from neurojoule.search.evaluator import Evaluator, plain_subnet, subnet_key
from neurojoule.search.evolution import Evolution, EvolutionSettings
from neurojoule.search.front import format_duration, plot_front
from neurojoule.search.nsga import NSGA2Search
from neurojoule.search.objectives import (
    AEB_LAMBDA,
    Fitness,
    Objectives,
    check_objectives,
    check_weights,
    pareto_front,
)
from neurojoule.search.proxy import proxy_correlation
from neurojoule.search.space import SCALE_GENES, Space, load_space, space_names
from neurojoule.util.files import atomic_write_text

ALGORITHMS = ("evolution", "nsga2")
STATE_FILE, RESULT_FILE, PLOT_FILE, LOCK_FILE = "search.json", "front.json", "front.png", ".lock"
STATE_VERSION = 1


@dataclass(frozen=True)
class Budget:
    population: int
    generations: int
    val_limit: int | None  # validation samples (None: the whole validation split)
    train_steps: int | None = None  # a search by training: each candidate's steps
    config: str | None = None  # a search by training: the base config of the candidates


# The published budget is the default; the CPU spaces get one sized for 2 cores.
PUBLISHED_BUDGET = Budget(population=50, generations=20, val_limit=None)
DEFAULT_BUDGETS = {
    "spikformer-published": PUBLISHED_BUDGET,
    "spikformer-fmnist-cpu": Budget(population=20, generations=10, val_limit=2000),
    "ssm-listops-cpu": Budget(8, 4, None, train_steps=314, config="listops-cpu"),
    "mlp-fmnist-cpu": Budget(8, 4, 2000, train_steps=300, config="fashion-mnist"),
}


def shipped_space_name(space: Space) -> str | None:
    """The name of the shipped space equal to `space` (same model and genes), if any."""
    for name in space_names():
        shipped = load_space(name)
        if shipped.model == space.model and shipped.genes == space.genes:
            return name
    return None


def default_budget(space: Space) -> Budget:
    return DEFAULT_BUDGETS.get(shipped_space_name(space) or "", PUBLISHED_BUDGET)


@dataclass(frozen=True)
class SearchSettings:
    """What a search does. Evolution's top_k, mutations and crossovers default to the
    published proportions of the population (EvolutionSettings.scaled)."""

    algorithm: str = "evolution"
    population: int = PUBLISHED_BUDGET.population
    generations: int = PUBLISHED_BUDGET.generations
    seed: int = 0
    objectives: tuple[str, ...] = ("error", "energy")  # minimised: the front's axes
    lam: float = AEB_LAMBDA
    weights: dict | None = None  # a user weighting instead of the AEB fitness
    top_k: int | None = None
    mutations: int | None = None
    crossovers: int | None = None

    def __post_init__(self):
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm must be one of {list(ALGORITHMS)}, got {self.algorithm!r}")
        object.__setattr__(self, "objectives", check_objectives(self.objectives))
        if self.weights is not None:
            object.__setattr__(self, "weights", check_weights(self.weights))
        if self.population < 2 or self.generations < 1:
            raise ValueError(
                f"a search needs a population >= 2 and generations >= 1, got "
                f"{self.population} and {self.generations}"
            )

    def evolution(self) -> EvolutionSettings:
        return EvolutionSettings.scaled(
            self.population,
            self.generations,
            top_k=self.top_k,
            mutations=self.mutations,
            crossovers=self.crossovers,
        )

    def to_dict(self) -> dict:
        values = asdict(self)
        values["objectives"] = list(self.objectives)
        return values


def reference_subnet(space: Space, options: Mapping | None = None) -> dict | None:
    """The hand-designed network as a subnet of `space`: the registry model built with
    `options` (none: as registered), a neuron scale at 1; None where it is not a member."""
    from neurojoule.models import build_model

    with torch.device("meta"):
        config = getattr(build_model(space.model, **(options or {})), "config", None)
    if config is None:
        return None
    tuples = [
        getattr(config, n) for n in space.per_block if isinstance(getattr(config, n, None), tuple)
    ]
    depth = len(tuples[0]) if tuples else space.max_depth  # the dense SNN's len(hidden)
    if space.depth_option is not None:
        depth = getattr(config, space.depth_option)
    subnet = {name: getattr(config, name, None) for name in space.shared}
    subnet["depth"] = depth
    for name in space.per_block:
        value = 1.0 if name in SCALE_GENES else getattr(config, name)
        subnet[name] = tuple(value) if isinstance(value, list | tuple) else (value,) * depth
    try:
        space.check(subnet)
    except (ValueError, TypeError):
        return None
    return subnet


def fingerprint(tensors: Iterable[torch.Tensor]) -> str:
    """SHA-256 of tensors' values (a resume must evaluate the same models on the same data)."""
    digest = hashlib.sha256()
    for tensor in tensors:
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy())
    return digest.hexdigest()[:16]


class SearchFolder:
    """`with SearchFolder(out, resume):` checks `out` against resume and holds its lock
    (flock on OUT/.lock, dropped by the operating system however the process ends)."""

    def __init__(self, path: str | Path, resume: bool):
        self.path, self.resume, self._lock = Path(path), resume, None

    @property
    def state_path(self) -> Path:
        return self.path / STATE_FILE

    def __enter__(self) -> SearchFolder:
        check_search_folder(self.path, self.resume)
        self.path.mkdir(parents=True, exist_ok=True)
        handle = open(self.path / LOCK_FILE, "a+")  # noqa: SIM115 (held until __exit__)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise ValueError(f"{self.path} is in use by another search") from None
        self._lock = handle
        try:
            check_search_folder(self.path, self.resume)  # again, now that it is ours
        except ValueError:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None


def check_search_folder(out: str | Path, resume: bool) -> None:
    """ValueError unless `out` can hold a new search (without resume) or holds one to
    continue (with resume): a cheap check to make before loading models and data."""
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise ValueError(f"--out {path} is a file; expected a search folder")
    state = path / STATE_FILE
    if resume and not state.is_file():
        raise ValueError(f"--resume: no search state at {state}")
    if not resume and state.is_file():
        raise ValueError(
            f"{path} already holds a search; pass --resume to continue it or pick --out"
        )


def read_state(path: str | Path) -> dict:
    path = Path(path)
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is not a search state: {error}") from None
    if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
        raise ValueError(f"{path} is not a search state of version {STATE_VERSION}")
    return state


def space_spec(space: Space) -> dict:
    return {"model": space.model, "genes": [[g.name, g.kind, list(g.values)] for g in space.genes]}


def run_search(
    space: Space,
    evaluator: Evaluator,
    settings: SearchSettings,
    out: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    context: Mapping | None = None,
    reference_options: Mapping | None = None,
) -> dict:
    """Run (or, with `resume`, continue) a search; returns the result (see summarise).
    `context` (JSON-ready) says what else the measurements depend on (the supernet's weights,
    the calibration data): a resume must give the same. The hand-designed reference is the
    registry model built with `reference_options` (none: as registered)."""
    rank0 = evaluator.rank == 0
    if out is None and resume:
        raise ValueError("resume needs the search folder (out)")
    folder = SearchFolder(out, resume) if out is not None and rank0 else None
    error = None
    try:
        if folder is not None:
            folder.__enter__()
    except ValueError as refused:
        error = refused
    _agree(evaluator, error)  # every rank stops, or none
    try:
        path = None if out is None else Path(out)
        writer = rank0 and path is not None
        search = _Search(space, evaluator, settings, path, progress and rank0, resume, writer)
        search.identity["context"] = json.loads(json.dumps(dict(context or {})))
        search.reference_options = dict(reference_options or {})
        return search.run()
    finally:
        if folder is not None:
            folder.__exit__()


def _agree(evaluator: Evaluator, error: Exception | None) -> None:
    """Raise `error` (a ValueError) on every rank when any rank has one."""
    if evaluator.world_size > 1:
        messages = [None] * evaluator.world_size
        torch.distributed.all_gather_object(messages, None if error is None else str(error))
        first = next((m for m in messages if m is not None), None)
        if first is not None:
            raise ValueError(first)
    elif error is not None:
        raise error


class _Search:
    def __init__(self, space, evaluator, settings, out, progress, resume, writer):
        self.space, self.evaluator, self.settings = space, evaluator, settings
        self.out, self.progress, self.resume, self.writer = out, progress, resume, writer
        self.identity = {
            "space": space_spec(space),
            "settings": settings.to_dict(),
            "data": {
                "samples": sum(len(y) for _, y in evaluator.batches),
                "fingerprint": fingerprint(t for batch in evaluator.batches for t in batch),
                "table": str(evaluator.table),
            },
        }
        self.reference_options: dict = {}
        self.history: list[dict] = []
        self.searched: dict[str, dict] = {}  # subnet key -> the first genome asked for it

    def run(self) -> dict:
        state = self._load() if self.resume else None
        if state is not None:
            self.evaluator.load_state(state["evaluator"])
            self.history = state["history"]
            self.searched = {subnet_key(self.space.decode(g)): g for g in state["searched"]}
        if self.evaluator.world_size > 1:  # nobody reads a state that rank 0 has rewritten
            torch.distributed.barrier()
        largest = self.space.extreme(largest=True)
        reference = reference_subnet(self.space, self.reference_options)
        measured = self.evaluator.evaluate_subnets([largest] + ([reference] if reference else []))
        self.fitness = Fitness(measured[0], self.settings.lam, self.settings.weights)
        algorithm = self._algorithm()
        if state is not None:
            algorithm.load_state(state["algorithm"])
        times = []
        while not algorithm.done:
            start = time.perf_counter()
            measured = self.evaluator.measured
            genomes, results = algorithm.step(self.evaluator.objectives)
            seconds = time.perf_counter() - start
            times.append(seconds)
            for genome in genomes:
                self.searched.setdefault(subnet_key(self.space.decode(genome)), genome)
            self.history.append(
                {
                    "generation": algorithm.generation,
                    "subnets": len(genomes),
                    "measured": self.evaluator.measured - measured,
                    "seconds": seconds,
                }
            )
            if self.writer:
                self._save(algorithm)
            if self.progress:
                self._report(algorithm, times)
        result = summarise(self, largest, reference)
        if self.writer:
            atomic_write_text(self.out / RESULT_FILE, json.dumps(result, indent=2))
            plot_front(result, self.out / PLOT_FILE)
        return result

    def _algorithm(self):
        s = self.settings
        if s.algorithm == "nsga2":
            return NSGA2Search(
                self.space, self.evaluator, s.objectives, s.population, s.generations, s.seed
            )
        return Evolution(self.space, s.evolution(), self.fitness, s.seed)

    def _load(self) -> dict:
        state = read_state(self.out / STATE_FILE)
        for name, mine in self.identity.items():
            if state.get(name) != mine:
                raise ValueError(
                    f"{self.out} holds a search with other {name} ({_short(state.get(name))}); "
                    f"this one has {_short(mine)}: resume it with the same options, or pick --out"
                )
        return state

    def _save(self, algorithm) -> None:
        state = {
            "version": STATE_VERSION,
            **self.identity,
            "generation": algorithm.generation,
            "algorithm": algorithm.state(),
            "evaluator": self.evaluator.state(),
            "searched": list(self.searched.values()),
            "history": self.history,
        }
        atomic_write_text(self.out / STATE_FILE, json.dumps(state))

    def _report(self, algorithm, times: list[float]) -> None:
        done, total = algorithm.generation, self.settings.generations
        last = self.history[-1]
        best = max(self._entries(), key=lambda entry: entry["fitness"])
        left = ""
        if not algorithm.done:
            left = f"; about {format_duration(sum(times) / len(times) * (total - done))} left"
        print(
            f"generation {done}/{total}: {last['subnets']} subnets ({last['measured']} "
            f"measured) in {format_duration(last['seconds'])}; best fitness "
            f"{best['fitness']:.4f} ({best['val_accuracy'] * 100:.2f} %, "
            f"{best['energy_uj']:.4g} µJ){left}",
            file=sys.stderr,
            flush=True,
        )

    def _entries(self) -> list[dict]:
        return [self.entry(genome) for genome in self.searched.values()]

    def entry(self, genome: Mapping | None, subnet: Mapping | None = None) -> dict:
        subnet = self.space.decode(genome) if subnet is None else subnet
        objectives: Objectives = self.evaluator.cache[subnet_key(subnet)]
        return {
            "genome": None if genome is None else dict(genome),
            "subnet": plain_subnet(subnet),
            "val_accuracy": objectives.accuracy,
            "energy_uj": objectives.energy_uj,
            "params": objectives.params,
            "steps": objectives.steps,
            "spike_rate": objectives.spike_rate,
            "fitness": self.fitness(objectives),
            **({} if objectives.training is None else {"training": objectives.training}),
        }


def summarise(search: _Search, largest: dict, reference: dict | None) -> dict:
    """The result: the front (the non-dominated subnets among all the search evaluated, in
    the settings' objectives, by energy), the fittest subnet, the largest subnet and the
    hand-designed reference (evaluated alike), every evaluated point, the history."""
    settings, evaluator = search.settings, search.evaluator
    genomes = list(search.searched.values())
    entries = [search.entry(g) for g in genomes]
    objectives = [evaluator.cache[subnet_key(search.space.decode(g))] for g in genomes]
    front = [entries[i] for i in pareto_front(objectives, settings.objectives)]
    front.sort(key=lambda e: (e["energy_uj"], -e["val_accuracy"]))
    best = max(entries, key=lambda e: e["fitness"]) if entries else None
    hand = None
    if reference is not None:
        name = search.identity["context"].get("reference_name", search.space.model)
        hand = {"name": name, **search.entry(None, reference)}
    return {
        "algorithm": settings.algorithm,
        "space": shipped_space_name(search.space),
        "model": search.space.model,
        "settings": settings.to_dict(),
        "validation": search.identity["data"],
        "context": search.identity["context"],
        "fitness": search.fitness.to_dict(),
        "fitness_rule": search.fitness.describe(),
        "generations": len(search.history),
        "evaluated": len(entries),
        "seconds": sum(h["seconds"] for h in search.history),
        "front": front,
        "best": best,
        "largest": search.entry(None, largest),
        "reference": hand,
        "points": [[e["energy_uj"], e["val_accuracy"]] for e in entries],
        "proxy": proxy_correlation(entries),
        "history": search.history,
    }


def _short(value: object) -> str:
    text = json.dumps(value)
    return text if len(text) <= 120 else text[:117] + "..."
