"""Training a network's weights by an evolution strategy (`neurojoule evolve weights`).

Each generation draws one minibatch of training samples; every member of the population is
judged on that same batch (common random numbers make the comparison between members fair)
by minus its cross-entropy, less a penalty for spikes above a cap when a spike budget is
set. The ES mean is measured on the validation split every `eval_every` generations; the
best one is kept. The run folder is a training run's: checkpoints/last.ckpt (rewritten every
`checkpoint_every_n_steps` generations, at Ctrl-C and at the end; it also carries the ES
state, so --resume continues the run exactly) and checkpoints/best-generation=N.ckpt, which
`neurojoule eval` reads like any checkpoint; the best is tested on the test split at the end.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml
from torch.utils.data import Dataset

from neurojoule.search.es import ESConfig, OpenES, Population, classification_fitness
from neurojoule.search.evaluator import (
    close_distributed,
    gathered_shares,
    init_distributed,
    rank_and_world,
)
from neurojoule.train.config import TrainConfig
from neurojoule.train.evaluation import evaluate
from neurojoule.train.module import build_model_for_task
from neurojoule.train.run_folder import RunFolder
from neurojoule.train.splits import make_splits
from neurojoule.util.files import atomic_write_text, atomic_writer


@dataclass(frozen=True)
class WeightEvolution:
    """How long and on what the strategy runs: `generations` of one `batch_size` minibatch
    each, the mean validated every `eval_every` generations, an optional spike budget
    (`spike_cap` spikes per sample, `spike_penalty` per unit of relative excess), and the
    population run batched (vmap) or member by member."""

    es: ESConfig = ESConfig()
    generations: int = 1000
    batch_size: int = 64
    eval_every: int = 50
    spike_cap: float | None = None
    spike_penalty: float = 1.0
    batched: bool = True

    def __post_init__(self):
        for name in ("generations", "batch_size", "eval_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        cap = self.spike_cap
        if cap is not None and not (math.isfinite(cap) and cap > 0):
            raise ValueError(f"spike_cap must be a finite number > 0, got {self.spike_cap}")
        if not (math.isfinite(self.spike_penalty) and self.spike_penalty >= 0):
            raise ValueError(f"spike_penalty must be finite and >= 0, got {self.spike_penalty}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def stacked(dataset: Dataset) -> tuple[torch.Tensor, torch.Tensor]:
    """A classification dataset as two tensors, inputs and labels."""
    inputs, labels = zip(*(dataset[i] for i in range(len(dataset))), strict=True)
    return torch.stack(inputs), torch.as_tensor(labels)


@torch.no_grad()
def accuracy(model: torch.nn.Module, inputs: torch.Tensor, labels: torch.Tensor) -> float:
    correct = sum(
        int((model(x).argmax(-1) == y).sum())
        for x, y in zip(inputs.split(512), labels.split(512), strict=True)
    )
    return correct / len(labels)


class _Run:
    """The state of one evolution: strategy, minibatch generator, history, best so far. Every
    torch.distributed rank holds the same state; each runs its share of the population, and
    rank 0 alone (the `writer`) writes the folder."""

    def __init__(
        self, config: TrainConfig, settings: WeightEvolution, folder: RunFolder, writer: bool
    ):
        self.config, self.settings, self.folder, self.writer = config, settings, folder, writer
        train_set, val_set, _, self.info = make_splits(config)
        self.train, self.val = stacked(train_set), stacked(val_set)
        torch.manual_seed(config.seed)
        self.model = build_model_for_task(config, self.info).eval()
        self.population = Population(self.model)
        self.es = OpenES(self.population.vector(), settings.es, seed=config.seed)
        self.batches = torch.Generator().manual_seed(config.seed + 1)
        self.generation, self.seconds = 0, 0.0
        self.history: list[dict] = []
        self.best = {"val_accuracy": -1.0, "generation": None}
        if folder.resume:
            self._load()

    def step(self) -> dict:
        x, y = self.train
        index = torch.randint(len(y), (self.settings.batch_size,), generator=self.batches)
        vectors = self.es.ask()
        rank, world = rank_and_world()
        share = vectors.tensor_split(world)[rank]
        parts = gathered_shares(lambda: self._fitness(share, x[index], y[index]))
        fitness, spikes = (torch.cat(values) for values in zip(*parts, strict=True))
        self.es.tell(fitness)
        self.generation += 1
        return {"fitness": float(fitness.mean()), "spikes": float(spikes.mean())}

    def _fitness(self, vectors, x, y) -> tuple[torch.Tensor, torch.Tensor]:
        if len(vectors) == 0:  # more ranks than members
            return torch.empty(0, dtype=torch.float64), torch.empty(0)
        logits, spikes = self.population.run(vectors, x, batched=self.settings.batched)
        fitness = classification_fitness(
            logits, y, spikes, self.settings.spike_cap, self.settings.spike_penalty
        )
        return fitness.double(), spikes

    def validate(self, step: dict) -> dict:
        self.population.assign(self.es.mean.detach())
        row = {
            "generation": self.generation,
            "seconds": self.seconds,
            "val_accuracy": accuracy(self.model, *self.val),
            "mean_fitness": step["fitness"],
            "population_spikes_per_sample": step["spikes"],
        }
        self.history.append(row)
        if row["val_accuracy"] > self.best["val_accuracy"]:
            self.best = {"val_accuracy": row["val_accuracy"], "generation": self.generation}
            if not self.writer:
                return row
            for old in self.folder.checkpoints.glob("best-*.ckpt"):
                old.unlink()
            self._write(self.folder.checkpoints / f"best-generation={self.generation}.ckpt")
        return row

    def save(self) -> None:
        self.population.assign(self.es.mean.detach())
        if self.writer:
            self._write(self.folder.last, with_state=True)

    def _write(self, path: Path, with_state: bool = False) -> None:
        checkpoint = {
            "epoch": 0,
            "global_step": self.generation,
            "hyper_parameters": {
                "config": self.config.to_dict(),
                "task_info": dataclasses.asdict(self.info),
            },
            "state_dict": {f"model.{k}": v for k, v in self.model.state_dict().items()},
        }
        if with_state:
            checkpoint["evolution"] = {
                "settings": self.settings.to_dict(),
                "es": self.es.state_dict(),
                "batches": self.batches.get_state(),
                "generation": self.generation,
                "seconds": self.seconds,
                "history": self.history,
                "best": self.best,
            }
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_writer(path, "wb") as handle:
            torch.save(checkpoint, handle)

    def _load(self) -> None:
        state = torch.load(self.folder.last, map_location="cpu", weights_only=True)
        saved = state.get("evolution")
        if saved is None:
            raise ValueError(f"--resume: {self.folder.last} holds no evolution state")
        if saved["settings"] != _plain(self.settings.to_dict()):
            raise ValueError(
                f"--resume: {self.folder.path} was run with other settings "
                f"({saved['settings']}); resume it with the same ones"
            )
        self.es.load_state_dict(saved["es"])
        self.batches.set_state(saved["batches"])
        self.generation, self.seconds = saved["generation"], saved["seconds"]
        self.history, self.best = saved["history"], saved["best"]


def _plain(values: dict) -> dict:
    """Settings as they come back from a checkpoint (weights_only keeps dicts and numbers)."""
    return {k: _plain(v) if isinstance(v, dict) else v for k, v in values.items()}


def evolve_weights(
    config: TrainConfig, settings: WeightEvolution, out: str | Path, resume: bool, progress: bool
) -> dict | None:
    """Run (or resume) the evolution into the run folder `out` and test the best mean. Under
    torchrun the ranks share each population; rank 0 holds and writes the folder and returns
    the result, the others return None. A refusal on any rank (the folder in use, a resume
    with other settings) stops every rank."""
    init_distributed()
    rank, world = rank_and_world()
    folder = RunFolder(out, resume)
    runs: list[_Run] = []

    def start() -> None:
        if rank == 0:
            folder.__enter__()
            text = yaml.safe_dump(config.to_dict(), sort_keys=False)
            atomic_write_text(folder.path / "config.yaml", text)
        runs.append(_Run(config, settings, folder, writer=rank == 0))

    try:
        gathered_shares(start)
        (run,) = runs
        _evolve(run, progress and rank == 0)
        if rank != 0:
            return None
        tested = evaluate(folder.checkpoints / f"best-generation={run.best['generation']}.ckpt")
    finally:
        folder.__exit__(None, None, None)
        close_distributed()
    return {
        "run": str(folder.path),
        "generations": run.generation,
        "train_seconds": run.seconds,
        "population": settings.es.population,
        "parameters": run.population.dim,
        "ranks": world,
        "best": run.best,
        "history": run.history,
        "test": tested,
    }


def _evolve(run: _Run, progress: bool) -> None:
    every = run.config.checkpoint_every_n_steps
    total = run.settings.generations
    try:
        while run.generation < total:
            start = time.perf_counter()
            step = run.step()
            run.seconds += time.perf_counter() - start
            if run.generation % run.settings.eval_every == 0 or run.generation == total:
                row = run.validate(step)
                if progress:
                    left = run.seconds / run.generation * (total - run.generation)
                    print(
                        f"generation {run.generation}/{total}: val acc {row['val_accuracy']:.2%}, "
                        f"population fitness {row['mean_fitness']:.4f}, "
                        f"{row['population_spikes_per_sample']:.1f} spikes/sample, "
                        f"{run.seconds:.0f} s, about {left:.0f} s left",
                        file=sys.stderr,
                        flush=True,
                    )
            if run.generation % every == 0 or run.generation == total:
                run.save()
    except KeyboardInterrupt:
        run.save()
        raise KeyboardInterrupt(
            f"{run.folder.last} holds generation {run.generation}; continue with --resume"
        ) from None


def format_evolution(result: dict) -> str:
    test = result["test"]
    per_sample = test["energy"].per_sample
    return (
        f"{test['model']} on {test['task']} ({result['parameters']} weights) trained by OpenES, "
        f"population {result['population']}, {result['generations']} generations in "
        f"{result['train_seconds']:.0f} s; best mean at generation "
        f"{result['best']['generation']} (val acc {result['best']['val_accuracy']:.2%})\n"
        f"test acc {test['accuracy']:.2%} on {test['samples']} samples, "
        f"{per_sample.spikes:.1f} spikes and {per_sample.snn_energy_j * 1e6:.4g} µJ per sample\n"
        f"run written to {result['run']}; evaluate with: neurojoule eval {result['run']}"
    )
