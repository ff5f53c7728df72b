"""Language-model training and evaluation (WikiText-103, the King James Bible) through Lightning.

The same run folder as classification (train/fit.py), with the best checkpoint chosen by
validation loss. Logged:
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
from neurojoule.train.checkpoints import describe_checkpoint, read_checkpoint, resolve_checkpoint
from neurojoule.train.config import TrainConfig
from neurojoule.train.evaluation import evaluation_split, percent
from neurojoule.train.finite import check_finite
from neurojoule.train.fit import TrainResult, fit_and_test, seed_everything
from neurojoule.train.module import ClassifierModule
from neurojoule.train.run_folder import RunFolder
from neurojoule.train.splits import evaluation_loader, make_splits


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
        self._check_output(loss, tokens, "loss", stage)
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
            sync_dist=True,
        )
        return self._with_rate_penalty(loss, stage)

    def _log_perplexity(self, stage: str) -> None:
        """exp of the mean NLL per token over the epoch, every rank's tokens counted."""
        totals = torch.tensor(self._totals.pop(stage, (0.0, 0)), dtype=torch.float64)
        nll_sum, count = self.trainer.strategy.reduce(totals, reduce_op="sum").tolist()
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
) -> TrainResult:
    """Fit a causal LM on a language-modelling task, then test the best checkpoint (by
    validation loss)."""
    if not is_lm_task(config.task):
        raise ValueError(f"expected a language-modelling task, got {config.task!r}")
    with RunFolder(out, resume) as folder:
        seed_everything(config.seed)
        train_set, val_set, test_set, info = make_splits(config)
        module = LanguageModelModule(config.to_dict(), asdict(info))
        splits = (train_set, val_set, test_set)
        return fit_and_test(
            module, splits, config, folder, progress, ("val/loss", "min"), loss_fn=lm_loss
        )


def is_lm_checkpoint(path: str | Path) -> bool:
    """Whether a training checkpoint (or run folder) holds a language model."""
    return is_lm_task(read_checkpoint(path)["hyper_parameters"]["config"].get("task", ""))


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
    checkpoint = resolve_checkpoint(checkpoint)
    config, model, dataset = evaluation_split(
        checkpoint, split, lif_mode, limit_samples, whole_split
    )
    if not is_lm_task(config.task):
        raise ValueError(f"{checkpoint} is not a language model: task {config.task!r}")
    nll_sum, tokens, windows = 0.0, 0, 0
    with EnergyCounter(model, table=energy_table) as counter:
        batches = evaluation_loader(dataset, batch_size or config.optim.batch_size)
        for x, y in tqdm(batches, desc=f"eval {split}", unit="batch", disable=not progress):
            nll = model.nll(x, y)
            check_finite(nll, f"the {split} split's negative log-likelihood")
            nll_sum += nll.sum().item()
            tokens += int((y != PAD_ID).sum())
            windows += len(y)
    report: EnergyReport = counter.report(samples=max(tokens, 1))
    loss = nll_sum / max(tokens, 1)
    return {
        "checkpoint": str(checkpoint),
        "evaluated": describe_checkpoint(checkpoint),
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


def format_lm_evaluation(result: dict) -> str:
    """The report `neurojoule eval` prints for a language model."""
    lines = [
        f"{result['model']} on {result['task']} ({result['split']}, {result['tokens']} tokens "
        f"in {result['windows']} windows, {result['lif_mode']} LIF): perplexity "
        f"{result['perplexity']:.2f} (loss {result['loss']:.4f} nats/token), "
        f"mean spike rate {percent(result['mean_spike_rate'])}",
        f"checkpoint: {result['evaluated']}",
    ]
    lines += [
        f"  {name}: spike rate {percent(rate)}" for name, rate in result["spike_rates"].items()
    ]
    lines += ["energy per predicted token:", result["energy"].format_table()]
    return "\n".join(lines)
