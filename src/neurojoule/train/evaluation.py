"""Evaluation of a trained classifier on real data, run as deployed (batch norms folded into
the synapses): accuracy, per-layer spike rates and the energy report with the MFI check."""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from neurojoule.energy import EnergyCounter, EnergyReport, fold_batchnorm, unfolded_batchnorms
from neurojoule.train.checkpoints import describe_checkpoint, load_checkpoint, resolve_checkpoint
from neurojoule.train.config import TrainConfig
from neurojoule.train.finite import check_finite, explain_non_finite
from neurojoule.train.module import apply_lif_mode
from neurojoule.train.splits import evaluation_loader, make_splits

SPLITS = ("train", "val", "test")


def evaluation_split(
    checkpoint: str | Path,
    split: str,
    lif_mode: str,
    limit_samples: int | None = None,
    whole_split: bool = False,
) -> tuple[TrainConfig, torch.nn.Module, Dataset]:
    """A checkpoint's config, its model (eval mode, `lif_mode`) and one split of its task:
    limited to `limit_samples`, whole, or (neither given) as in training: the config's
    limit_eval_samples, or for the train split the samples the model trained on."""
    if whole_split and limit_samples is not None:
        raise ValueError("give either limit_samples or whole_split, not both")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {list(SPLITS)}, got {split!r}")
    config, _, model = load_checkpoint(checkpoint)
    if limit_samples is not None or whole_split:
        if split == "train":
            config.limit_train_samples = limit_samples
        else:
            config.limit_eval_samples = limit_samples
    apply_lif_mode(model, lif_mode, config.model)
    splits = dict(zip(SPLITS, make_splits(config)[:3], strict=True))
    return config, model, splits[split]


@torch.no_grad()
def evaluate(
    checkpoint: str | Path,
    split: str = "test",
    lif_mode: str = "bptt",
    batch_size: int | None = None,
    energy_table: str = "45nm",
    limit_samples: int | None = None,
    whole_split: bool = False,
    progress: bool = False,
) -> dict:
    """Accuracy, per-layer spike rates and the energy report of a checkpoint (or of a run
    folder's best checkpoint) on one split of its task."""
    checkpoint = resolve_checkpoint(checkpoint)
    config, model, dataset = evaluation_split(
        checkpoint, split, lif_mode, limit_samples, whole_split
    )
    model = fold_batchnorm(model)
    correct = total = 0
    batches = evaluation_loader(dataset, batch_size or config.optim.batch_size)
    with EnergyCounter(model, table=energy_table) as counter:
        for x, y in tqdm(batches, desc=f"eval {split}", unit="batch", disable=not progress):
            check_finite(x, f"a {split} batch's input")
            logits = model(x)
            if not torch.isfinite(logits).all():
                raise explain_non_finite(model, x, "logits", f"on the {split} split")
            correct += (logits.argmax(-1) == y).sum().item()
            total += len(y)
    report: EnergyReport = counter.report(samples=total)
    return {
        "checkpoint": str(checkpoint),
        "evaluated": describe_checkpoint(checkpoint),
        "model": config.model,
        "task": config.task,
        "split": split,
        "lif_mode": lif_mode,
        "samples": total,
        "accuracy": correct / total,
        "spike_rates": {row.name: row.firing_rate for row in report.neurons},
        "mean_spike_rate": report.mean_firing_rate,
        "unfolded_batchnorms": unfolded_batchnorms(model),
        "energy": report,
    }


def percent(value: float | None) -> str:
    return "n/a (no spiking layers)" if value is None else f"{value * 100:.2f} %"


def format_evaluation(result: dict) -> str:
    """The report `neurojoule eval` prints for a classifier."""
    left = result["unfolded_batchnorms"]
    folded = "batch norms folded into the synapses" + (
        f"; {len(left)} not foldable: {', '.join(left)}" if left else " (all)"
    )
    return "\n".join(
        [
            f"{result['model']} on {result['task']} ({result['split']}, {result['samples']} "
            f"samples, {result['lif_mode']} LIF): accuracy {result['accuracy'] * 100:.2f} %, "
            f"mean spike rate {percent(result['mean_spike_rate'])}",
            f"checkpoint: {result['evaluated']}",
            folded,
            result["energy"].format_table(),
        ]
    )
