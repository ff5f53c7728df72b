"""Language-model training and evaluation (WikiText-103, the King James Bible) through Lightning.

The same run folder as classification (train/sequence.py): checkpoints/ (atomic; last.ckpt
for --resume, best by validation loss), metrics.csv, config.yaml, lif_mode.json. Logged:
{train,val,test}/loss (mean negative log-likelihood per predicted token, nats),
{train,val,test}/ppl (its exponential, over the whole epoch) and per-layer spike rates.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from pathlib import Path

import torch
from tqdm import tqdm

from neurojoule.data import is_lm_task
from neurojoule.data.tokens import PAD_ID
from neurojoule.energy import EnergyCounter, EnergyReport
from neurojoule.train.config import TrainConfig
from neurojoule.train.sequence import (
    ClassifierModule,
    evaluation_split,
    fit_and_test,
    loader,
    make_splits,
    start_run,
)


def perplexity(mean_nll: float) -> float:
    """exp(mean negative log-likelihood), inf where that overflows."""
    try:
        return math.exp(mean_nll)
    except OverflowError:
        return math.inf


def lm_loss(model: torch.nn.Module, tokens: torch.Tensor, targets: torch.Tensor):
    return model.loss(tokens, targets)


class LanguageModelModule(ClassifierModule):
    """Next-token negative log-likelihood of a CausalLM; optimiser, schedule, spike-rate
    recording and penalty as in ClassifierModule. Validation and test use eval_lif_mode."""

    def __init__(self, config: dict, task_info: dict):
        super().__init__(config, task_info)
        if not callable(getattr(self.model, "nll", None)):
            raise ValueError(
                f"task {self.config.task!r} is language modelling: expected a causal LM model "
                f"(spiking-ssm-lm or s4d-lm), got {self.config.model!r}"
            )
        self._totals: dict[str, list[float]] = {}

    def _step(self, batch, stage: str):
        tokens, targets = batch
        self._step_rates = []
        nll = self.model.nll(tokens, targets)
        counted = (targets != PAD_ID).sum()
        loss = nll.sum() / counted.clamp(min=1)
        total = self._totals.setdefault(stage, [0.0, 0])
        total[0] += nll.detach().sum().item()
        total[1] += counted.item()
        on_step = stage == "train"
        self.log(
            f"{stage}/loss",
            loss,
            prog_bar=True,
            on_step=on_step,
            on_epoch=True,
            batch_size=max(1, int(counted)),  # the epoch mean is then per token
        )
        return self._with_rate_penalty(loss, stage)

    def _log_perplexity(self, stage: str) -> None:
        nll_sum, count = self._totals.pop(stage, (0.0, 0))
        if count:
            self.log(f"{stage}/ppl", perplexity(nll_sum / count), prog_bar=stage != "train")

    def on_train_epoch_start(self):
        self._totals.pop("train", None)
        super().on_train_epoch_start()

    def on_train_epoch_end(self):
        super().on_train_epoch_end()
        self._log_perplexity("train")

    def on_validation_epoch_start(self):
        self._totals.pop("val", None)
        super().on_validation_epoch_start()

    def on_validation_epoch_end(self):
        super().on_validation_epoch_end()
        self._log_perplexity("val")

    def on_test_epoch_start(self):
        self._totals.pop("test", None)
        super().on_test_epoch_start()

    def on_test_epoch_end(self):
        super().on_test_epoch_end()
        self._log_perplexity("test")


def train_lm(
    config: TrainConfig, out: str | Path, resume: bool = False, progress: bool = True
) -> Path:
    """Fit a causal LM on a language-modelling task, then test the best checkpoint (by
    validation loss); returns the run folder."""
    if not is_lm_task(config.task):
        raise ValueError(f"expected a language-modelling task, got {config.task!r}")
    out = start_run(config, out, resume)
    train_set, val_set, test_set, info = make_splits(config)
    module = LanguageModelModule(config.to_dict(), asdict(info))
    splits = (train_set, val_set, test_set)
    return fit_and_test(
        module, splits, config, out, resume, progress, ("val/loss", "min"), loss_fn=lm_loss
    )


def is_lm_checkpoint(path: str | Path) -> bool:
    """Whether a training checkpoint holds a language model (False for anything unreadable,
    which load_checkpoint then reports)."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        return is_lm_task(checkpoint["hyper_parameters"]["config"]["task"])
    except Exception:
        return False


@torch.no_grad()
def evaluate_lm(
    checkpoint: str | Path,
    split: str = "test",
    lif_mode: str = "bptt",
    batch_size: int | None = None,
    energy_table: str = "45nm",
    limit_samples: int | None = None,
    whole_split: bool = False,
    progress: bool = False,
) -> dict:
    """Perplexity, per-layer spike rates and the energy report (per predicted token) of a
    language-model checkpoint on one split; `limit_samples` limits the windows."""
    config, model, dataset = evaluation_split(
        checkpoint, split, lif_mode, limit_samples, whole_split
    )
    if not is_lm_task(config.task):
        raise ValueError(f"{checkpoint} is not a language model: task {config.task!r}")
    nll_sum, tokens, windows = 0.0, 0, 0
    with EnergyCounter(model, table=energy_table) as counter:
        batches = loader(dataset, batch_size or config.optim.batch_size, False)
        for x, y in tqdm(batches, desc=f"eval {split}", unit="batch", disable=not progress):
            nll_sum += model.nll(x, y).sum().item()
            tokens += int((y != PAD_ID).sum())
            windows += len(y)
    report: EnergyReport = counter.report(samples=max(tokens, 1))
    loss = nll_sum / max(tokens, 1)
    return {
        "checkpoint": str(checkpoint),
        "model": config.model,
        "task": config.task,
        "split": split,
        "lif_mode": lif_mode,
        "windows": windows,
        "tokens": tokens,
        "loss": loss,
        "perplexity": perplexity(loss),
        "spike_rates": {row.name: row.firing_rate for row in report.neurons},
        "mean_spike_rate": report.mean_firing_rate,
        "energy": report,
    }
