"""What `neurojoule search` runs: a trained supernet searched on its validation split.

The subnets are evaluated as the search would deploy them: the supernet's slices copied into
a standalone model of the registry's class, its batch norms recalibrated on a few training
batches (search.subnets.inherited_model), then folded and measured (objectives). The
validation split is the run's own, held out of its training data; the test split is never
read. The budget defaults to the space's (runner.DEFAULT_BUDGETS): the published budget for
the published space, a smaller one for the CPU space.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from neurojoule.search.evaluator import Evaluator
from neurojoule.search.runner import (
    SearchSettings,
    check_search_folder,
    default_budget,
    fingerprint,
    run_search,
)
from neurojoule.search.subnets import (
    DEFAULT_CALIBRATION_BATCHES,
    calibration_batches,
    inherited_model,
)
from neurojoule.search.supernet import load_supernet
from neurojoule.train.config import TrainConfig
from neurojoule.train.splits import make_splits

DEFAULT = "default"  # a budget value taken from the space's default budget


def search_splits(config: TrainConfig, val_limit: int | None) -> tuple[Dataset, Dataset]:
    """(train, validation) of the supernet's task: the validation split limited to
    `val_limit` samples drawn with the run's seed (None: the whole split)."""
    limited = dataclasses.replace(config, limit_eval_samples=val_limit)
    train, val, _, _ = make_splits(limited)
    return train, val


def validation_batches(dataset: Dataset, batch_size: int) -> list[tuple]:
    """The validation samples in order, as (inputs, labels) batches held in memory, so that
    every subnet sees the same data."""
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False)
    return [(x, y) for x, y in loader]


def search_supernet(
    run: str | Path,
    algorithm: str = "evolution",
    population: int | str = DEFAULT,
    generations: int | str = DEFAULT,
    val_limit: int | None | str = DEFAULT,
    seed: int = 0,
    objectives: tuple[str, ...] = ("error", "energy"),
    lam: float | None = None,
    weights: dict | None = None,
    evolution: dict | None = None,
    batch_size: int | None = None,
    calibration_batch_count: int = DEFAULT_CALIBRATION_BATCHES,
    energy_table: str = "45nm",
    out: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    device: torch.device | str | None = None,
) -> dict:
    """Search the supernet of a run folder (or checkpoint) and return the result of
    runner.run_search; budgets left at DEFAULT take the space's default budget."""
    if out is not None:
        check_search_folder(out, resume)  # before the models and data are loaded
    elastic, space, config, _ = load_supernet(run)
    budget = default_budget(space)
    population = budget.population if population == DEFAULT else population
    generations = budget.generations if generations == DEFAULT else generations
    val_limit = budget.val_limit if val_limit == DEFAULT else val_limit
    batch_size = batch_size or config.optim.batch_size
    train, val = search_splits(config, val_limit)
    calibration = []
    if calibration_batch_count:
        calibration = calibration_batches(train, calibration_batch_count, batch_size, seed)
    if device is not None:
        elastic = elastic.to(device)
        calibration = [x.to(device) for x in calibration]

    def provider(subnet: dict) -> torch.nn.Module:
        return inherited_model(elastic, subnet, calibration)

    evaluator = Evaluator(
        space, provider, validation_batches(val, batch_size), energy_table, device
    )
    settings = SearchSettings(
        algorithm=algorithm,
        population=population,
        generations=generations,
        seed=seed,
        objectives=tuple(objectives),
        weights=weights,
        **({} if lam is None else {"lam": lam}),
        **(evolution or {}),
    )
    context = {
        "supernet_weights": fingerprint(elastic.state_dict().values()),
        "calibration": {"batches": len(calibration), "inputs": fingerprint(calibration)},
    }
    return run_search(space, evaluator, settings, out, resume, progress, context)
