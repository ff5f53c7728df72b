"""What `neurojoule search` runs: a trained supernet searched on its validation split, or a
space searched by training its candidates (search_by_training, search.trained).

The subnets are evaluated as the search would deploy them: the supernet's slices copied into
a standalone model of the registry's class, its batch norms recalibrated on a few training
batches (search.subnets.inherited_model), then folded and measured (objectives). The
validation split is the run's own, held out of its training data; the test split is never
read. The budget defaults to the space's (runner.DEFAULT_BUDGETS): the published budget for
the published space, a smaller one for the CPU space.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
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
from neurojoule.search.space import Space
from neurojoule.search.subnets import (
    DEFAULT_CALIBRATION_BATCHES,
    calibration_batches,
    inherited_model,
)
from neurojoule.search.supernet import load_supernet
from neurojoule.search.trained import CandidateTrainer, TrainingBudget, TrainingEvaluator
from neurojoule.train.config import TrainConfig
from neurojoule.train.splits import make_splits

DEFAULT = "default"  # a budget value taken from the space's default budget
DEFAULT_TRAIN_STEPS = 300  # a search by training of a space without a default budget


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


@dataclass(frozen=True)
class SearchRequest:
    """What a search is asked for, by either kind of search; a budget left at DEFAULT takes
    the space's default budget (runner.DEFAULT_BUDGETS)."""

    algorithm: str = "evolution"
    population: int | str = DEFAULT
    generations: int | str = DEFAULT
    val_limit: int | None | str = DEFAULT
    seed: int = 0
    objectives: tuple[str, ...] = ("error", "energy")
    lam: float | None = None
    weights: dict | None = None
    evolution: dict | None = None  # top_k, mutations, crossovers
    energy_table: str = "45nm"
    out: str | Path | None = None
    resume: bool = False
    progress: bool = True

    def settings(self, space: Space) -> tuple[SearchSettings, int | None]:
        """The search settings for `space` and the validation samples (None: all)."""
        budget = default_budget(space)
        settings = SearchSettings(
            algorithm=self.algorithm,
            population=budget.population if self.population == DEFAULT else self.population,
            generations=budget.generations if self.generations == DEFAULT else self.generations,
            seed=self.seed,
            objectives=tuple(self.objectives),
            weights=self.weights,
            **({} if self.lam is None else {"lam": self.lam}),
            **(self.evolution or {}),
        )
        return settings, budget.val_limit if self.val_limit == DEFAULT else self.val_limit


def search_supernet(
    run: str | Path,
    request: SearchRequest,
    batch_size: int | None = None,
    calibration_batch_count: int = DEFAULT_CALIBRATION_BATCHES,
    device: torch.device | str | None = None,
) -> dict:
    """Search the supernet of a run folder (or checkpoint); returns the result of
    runner.run_search."""
    if request.out is not None:
        check_search_folder(request.out, request.resume)  # before models and data load
    elastic, space, config, _ = load_supernet(run)
    settings, val_limit = request.settings(space)
    batch_size = batch_size or config.optim.batch_size
    train, val = search_splits(config, val_limit)
    calibration = []
    if calibration_batch_count:
        calibration = calibration_batches(train, calibration_batch_count, batch_size, request.seed)
    if device is not None:
        elastic = elastic.to(device)
        calibration = [x.to(device) for x in calibration]

    def provider(subnet: dict) -> torch.nn.Module:
        return inherited_model(elastic, subnet, calibration)

    batches = validation_batches(val, batch_size)
    evaluator = Evaluator(space, provider, batches, request.energy_table, device)
    context = {
        "supernet_weights": fingerprint(elastic.state_dict().values()),
        "calibration": {"batches": len(calibration), "inputs": fingerprint(calibration)},
    }
    return run_search(
        space, evaluator, settings, request.out, request.resume, request.progress, context
    )


def search_by_training(
    space: Space,
    config: TrainConfig,
    request: SearchRequest,
    train_steps: int | None = None,
    cut: bool = True,
    proxy: bool = False,
    reference_name: str | None = None,
) -> dict:
    """Search `space` by training every candidate from `config` for `train_steps` steps
    (None: the space's budget; search.trained), with `proxy` scoring each at initialisation
    too (search.proxy); returns the result of runner.run_search. The
    hand-designed reference is the config's model options, trained alike (named
    `reference_name`, default the model's)."""
    if request.out is None:
        raise ValueError("a search by training needs a folder (out) for its candidates")
    check_search_folder(request.out, request.resume)
    settings, val_limit = request.settings(space)
    steps = train_steps or default_budget(space).train_steps or DEFAULT_TRAIN_STEPS
    config = dataclasses.replace(config, model=space.model)
    training = TrainingBudget(steps, cut=cut, proxy=proxy)
    val = search_splits(config, val_limit)[1]
    trainer = CandidateTrainer(space, config, training, Path(request.out))
    batches = validation_batches(val, config.optim.batch_size)
    evaluator = TrainingEvaluator(space, trainer, batches, request.energy_table)
    context = {
        "config": config.to_dict(),
        "training": dataclasses.asdict(training),
        "reference_name": reference_name or space.model,
    }
    return run_search(
        space,
        evaluator,
        settings,
        request.out,
        request.resume,
        request.progress,
        context,
        reference_options=config.model_options,
    )
