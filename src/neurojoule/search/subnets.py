"""Subnets taken out of a trained supernet: batch-norm recalibration, the inherited model the
search evaluates, and extraction into a training checkpoint that `neurojoule eval` reads and
`neurojoule train --init` fine-tunes.

A subnet's batch norms hold the slices of statistics that every subnet sharing them updated
during supernet training, not its own. Before a subnet is evaluated its batch norms are reset
and recomputed on a few training batches: each statistic becomes the plain average over the
batches of the batch's mean and (unbiased) variance, as BatchNorm computes with momentum None.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from neurojoule.models.elastic import ElasticModel
from neurojoule.search.evaluator import plain_subnet
from neurojoule.search.space import Space
from neurojoule.search.supernet import as_subnet, read_supernet
from neurojoule.train.config import TrainConfig
from neurojoule.train.splits import make_splits
from neurojoule.util.files import atomic_writer

DEFAULT_CALIBRATION_BATCHES = 8


def _batch_norms(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, batches: Iterable) -> nn.Module:
    """Reset the running statistics of every batch norm of `model` and recompute them as the
    plain average over `batches` (input tensors, or (inputs, labels) pairs) of each batch's
    statistics: the batch norms run in training mode with momentum None, the rest of the
    model in eval mode (no dropout), without gradients. Returns `model`, in eval mode."""
    inputs = [batch[0] if isinstance(batch, list | tuple) else batch for batch in batches]
    if not inputs:
        raise ValueError("batch-norm recalibration needs at least one batch")
    norms = _batch_norms(model)
    untracked = [m for m in norms if not m.track_running_stats]
    if untracked:
        raise ValueError(f"{len(untracked)} batch norms keep no running statistics to recompute")
    momenta = [norm.momentum for norm in norms]
    model.eval()
    try:
        for norm in norms:
            norm.reset_running_stats()
            norm.momentum = None  # a cumulative average: every batch counts alike
            norm.train()
        device = next(model.parameters(), torch.empty(0)).device
        for x in inputs:
            model(x.to(device))
    finally:
        for norm, momentum in zip(norms, momenta, strict=True):
            norm.momentum = momentum
        model.eval()
    return model


def calibration_batches(
    dataset: Dataset, count: int, batch_size: int, seed: int = 0
) -> list[torch.Tensor]:
    """`count` batches of `batch_size` inputs drawn without replacement from `dataset` (a
    training split) in an order fixed by `seed` (fewer where the split is smaller)."""
    if count < 1 or batch_size < 1:
        raise ValueError(f"expected count and batch_size >= 1, got {count} and {batch_size}")
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))
    chosen = Subset(dataset, order[: count * batch_size].tolist())
    return [batch[0] for batch in DataLoader(chosen, batch_size=batch_size, shuffle=False)]


def inherited_model(
    elastic: ElasticModel, subnet: Mapping, calibration_batches: Iterable
) -> nn.Module:
    """The standalone model of a subnet with the supernet's weights (copies of their leading
    slices) and its batch norms recalibrated on `calibration_batches`, in eval mode. With no
    batches it keeps the statistics it inherits."""
    model = elastic.extract(subnet)
    batches = list(calibration_batches)
    return recalibrate_batchnorm(model, batches) if batches else model.eval()


def resolve_subnet(space: Space, subnet: Mapping | str) -> dict:
    """ "largest", "smallest", or a subnet's options or genome (see as_subnet)."""
    if isinstance(subnet, str):
        if subnet not in ("largest", "smallest"):
            raise ValueError(f"expected 'largest', 'smallest' or a subnet, got {subnet!r}")
        return space.extreme(largest=subnet == "largest")
    return as_subnet(space, subnet)


def extract_subnet(
    run: str | Path,
    subnet: Mapping | str,
    out: str | Path,
    calibration_batch_count: int = DEFAULT_CALIBRATION_BATCHES,
    seed: int = 0,
) -> dict:
    """Write the subnet of a supernet run (folder or checkpoint) as a training checkpoint of
    the space's model at `out` (atomically): its config has the subnet's options as model
    options, its weights are inherited from the supernet, its batch norms recalibrated on
    `calibration_batch_count` training batches (drawn with `seed`; 0: not recalibrated).
    Returns what was written."""
    elastic, space, config, info, source, checkpoint = read_supernet(run)
    subnet = resolve_subnet(space, subnet)
    batches = []
    if calibration_batch_count:
        train_set = make_splits(config)[0]
        batch_size = config.optim.batch_size
        batches = calibration_batches(train_set, calibration_batch_count, batch_size, seed)
    model = inherited_model(elastic, subnet, batches)
    options = plain_subnet(subnet)
    standalone = dataclasses.replace(
        config,
        model_options={**config.model_options, **options},
        space=None,
        sampling=TrainConfig.sampling,
        init=None,
    )
    record = {
        "supernet": str(source),
        "subnet": options,
        "calibration_batches": len(batches),
        "calibration_samples": sum(len(x) for x in batches),
        "seed": seed,
    }
    written = {
        "epoch": checkpoint.get("epoch", 0),
        "global_step": checkpoint.get("global_step", 0),
        "hyper_parameters": {"config": standalone.to_dict(), "task_info": dataclasses.asdict(info)},
        "state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
        "extracted_from": record,
    }
    with atomic_writer(out, "wb") as handle:
        torch.save(written, handle)
    return {**record, "checkpoint": str(out), "model": standalone.model, "task": config.task}


def format_extraction(result: dict) -> str:
    """What `neurojoule supernet extract` prints."""
    calibrated = (
        f"batch norms recalibrated on {result['calibration_batches']} training batches "
        f"({result['calibration_samples']} samples)"
        if result["calibration_batches"]
        else "batch-norm statistics as inherited (not recalibrated)"
    )
    options = ", ".join(f"{k} {v}" for k, v in result["subnet"].items())
    return (
        f"{result['model']} ({options}) from {result['supernet']}; {calibrated}\n"
        f"checkpoint written to {result['checkpoint']}; evaluate with: neurojoule eval "
        f"{result['checkpoint']}; fine-tune with: neurojoule train {result['model']} --task "
        f"{result['task']} --init {result['checkpoint']}"
    )
