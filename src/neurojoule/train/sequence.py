"""Training and evaluation of classifiers through Lightning: sequence models (SpikingSSM, S4D)
on long-sequence tasks and vision SNNs (spiking MLP, Spikformer) on image tasks.

A run writes, under its folder: checkpoints/ (atomic; last.ckpt for --resume, best by
validation accuracy), metrics.csv (loss, accuracy and per-layer spike rate per epoch),
config.yaml, and lif_mode.json (the measured choice of the spiking layers' training mode).
"""

from __future__ import annotations

import copy
import json
import logging
import math
import pickle
import statistics
import sys
from dataclasses import asdict
from pathlib import Path

import lightning as L
import torch
import yaml
from lightning.pytorch.callbacks import ModelCheckpoint, Timer, TQDMProgressBar
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.plugins.io import TorchCheckpointIO
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm import tqdm

from neurojoule.data import classification_task, is_lm_task, lm_task
from neurojoule.data.tasks import TaskInfo
from neurojoule.energy import EnergyCounter, EnergyReport, fold_batchnorm, unfolded_batchnorms
from neurojoule.layers import set_lif_mode, ssm_neurons, ssm_parameter_groups
from neurojoule.models import build_model
from neurojoule.neuron import SpikingNeuron
from neurojoule.train.config import TrainConfig
from neurojoule.util.files import atomic_writer
from neurojoule.util.timing import median_seconds


class ClassifierModule(L.LightningModule):
    """Cross-entropy classification with AdamW (SSM kernel group apart), warm-up + cosine."""

    def __init__(self, config: dict, task_info: dict):
        super().__init__()
        self.save_hyperparameters({"config": config, "task_info": task_info})
        self.config = TrainConfig(**config)
        self.model = build_model_for_task(self.config, TaskInfo(**task_info))
        if self.config.loss == "tet" and not hasattr(self.model, "step_logits"):
            raise ValueError(
                f"loss 'tet' needs a model with per-step outputs (spiking-mlp, spikformer), "
                f"got {self.config.model!r}"
            )
        self._rates: dict[str, dict[str, list[float]]] = {}  # stage -> layer -> rates
        self._stage: str | None = None
        self._step_rates: list[torch.Tensor] = []
        self._hooks = []

    def forward(self, x):
        return self.model(x)

    def _step(self, batch, stage: str):
        x, y = batch
        self._step_rates = []
        if stage == "train" and self.config.loss == "tet":
            per_step = self.model.step_logits(x)  # [T, B, classes]
            # the mean over steps of each step's cross-entropy (equal batch at every step)
            loss = torch.nn.functional.cross_entropy(
                per_step.flatten(0, 1), y.repeat(per_step.shape[0])
            )
            logits = per_step.mean(0)
        else:
            logits = self.model(x)
            loss = torch.nn.functional.cross_entropy(logits, y)
        acc = (logits.argmax(-1) == y).float().mean()
        on_step = stage == "train"
        loss = self._with_rate_penalty(loss, stage)
        self.log(f"{stage}/loss", loss, prog_bar=True, on_step=on_step, on_epoch=True)
        self.log(f"{stage}/acc", acc, prog_bar=True, on_step=on_step, on_epoch=True)
        return loss

    def _with_rate_penalty(self, loss: torch.Tensor, stage: str) -> torch.Tensor:
        """In training, add spike_rate_penalty x max(0, mean firing rate over the spiking layers
        - spike_rate_target) (differentiable through the surrogate)."""
        penalty = self.config.spike_rate_penalty
        if stage == "train" and penalty and self._step_rates:
            excess = torch.stack(self._step_rates).mean() - self.config.spike_rate_target
            loss = loss + penalty * excess.clamp(min=0)
        return loss

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")

    def test_step(self, batch, batch_idx):
        self._step(batch, "test")

    # Spike rates of every neuron layer, recorded with forward hooks into the running stage's
    # table and logged per epoch. Validation runs inside a training epoch, so each stage keeps
    # its own table and training resumes recording when validation ends.
    def _begin_stage(self, stage: str):
        if not self._hooks:
            for name, module in self.model.named_modules():
                if isinstance(module, SpikingNeuron):
                    self._hooks.append(module.register_forward_hook(self._recorder(name)))
        self._stage = stage
        self._rates[stage] = {}

    def _recorder(self, name: str):
        def hook(module, inputs, output):
            if self._stage is None:
                return
            spikes = output[0] if isinstance(output, tuple) else output
            rate = spikes.float().mean()
            if self._stage == "train":
                self._step_rates.append(rate)
            self._rates[self._stage].setdefault(name, []).append(rate.item())

        return hook

    def _end_stage(self, stage: str):
        rates = self._rates.pop(stage, {})
        self._stage = "train" if stage == "val" and "train" in self._rates else None
        if self._stage is None:
            for hook in self._hooks:
                hook.remove()
            self._hooks = []
        if not rates:
            return
        means = {name: statistics.fmean(values) for name, values in rates.items()}
        for name, rate in means.items():
            self.log(f"{stage}/spike_rate/{name}", rate)
        self.log(f"{stage}/spike_rate/mean", statistics.fmean(means.values()), prog_bar=True)

    def on_train_epoch_start(self):
        self._begin_stage("train")

    def on_train_epoch_end(self):
        self._end_stage("train")

    # validation and test use the exact LIF (eval_lif_mode), whatever the training mode
    def _start_evaluation(self, stage: str):
        self._saved_modes = set_lif_mode(self.model, self.config.eval_lif_mode)
        self._begin_stage(stage)

    def _end_evaluation(self, stage: str):
        self._end_stage(stage)
        set_lif_mode(self.model, self._saved_modes)

    def on_validation_epoch_start(self):
        self._start_evaluation("val")

    def on_validation_epoch_end(self):
        self._end_evaluation("val")

    def on_test_epoch_start(self):
        self._start_evaluation("test")

    def on_test_epoch_end(self):
        self._end_evaluation("test")

    def configure_optimizers(self):
        optim = self.config.optim
        groups = ssm_parameter_groups(self.model, optim.lr, optim.weight_decay)
        optimizer = torch.optim.AdamW(groups)
        total = max(1, int(self.trainer.estimated_stepping_batches))
        warmup = int(total * optim.warmup_fraction)

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            progress = (step - warmup) / max(1, total - warmup)
            return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}


def build_model_for_task(config: TrainConfig, info: TaskInfo) -> torch.nn.Module:
    """The configured model with the task's input and output sizes."""
    sizes = {"num_classes": info.num_classes, "paired": info.paired}
    if info.image_size is not None:
        sizes = {
            "num_classes": info.num_classes,
            "in_channels": info.in_channels,
            "image_size": info.image_size,
        }
    elif info.vocab_size is not None:
        sizes["vocab_size"] = info.vocab_size
    else:
        sizes["in_channels"] = info.in_channels
    model = build_model(config.model, **config.model_options, **sizes)
    if config.lif_mode != "auto":
        set_lif_mode(model, config.lif_mode)
    return model


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints written to a temporary file beside the target, then renamed into place, so
    an interrupted save never leaves a truncated checkpoint."""

    def save_checkpoint(self, checkpoint, path, storage_options=None):
        with atomic_writer(path, "wb") as handle:
            torch.save(checkpoint, handle)


def make_splits(config: TrainConfig) -> tuple[Dataset, Dataset, Dataset, TaskInfo]:
    """The task's splits (a language-modelling task's windows too), limited as configured."""
    task = lm_task if is_lm_task(config.task) else classification_task
    train, val, test, info = task(config.task, config.task_root, **config.task_options)
    train = _limit(train, config.limit_train_samples, config.seed)
    val = _limit(val, config.limit_eval_samples, config.seed + 1)
    test = _limit(test, config.limit_eval_samples, config.seed + 2)
    return train, val, test, info


def _limit(dataset: Dataset, limit: int | None, seed: int) -> Dataset:
    if limit is None or limit >= len(dataset):
        return dataset
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))
    return Subset(dataset, order[:limit].tolist())


def loader(dataset: Dataset, batch_size: int, shuffle: bool, seed: int = 0) -> DataLoader:
    generator = torch.Generator().manual_seed(seed) if shuffle else None
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=generator)


def classification_loss(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor):
    return torch.nn.functional.cross_entropy(model(x), y)


def choose_lif_mode(
    model: torch.nn.Module, batch, repeats: int = 2, loss_fn=classification_loss
) -> dict | None:
    """Time one training step (loss_fn(model, x, y) backward) of the model's spiking layers
    with the exact LIF and with the SDN on this device (on a copy, so the model's statistics
    stay untouched); set the faster. Returns the times, or None for a model without SSM
    neurons."""
    if not ssm_neurons(model):
        return None
    probe = copy.deepcopy(model)
    x, y = batch

    def step():
        loss_fn(probe, x, y).backward()

    seconds = {}
    for mode in ("bptt", "sdn"):
        try:
            set_lif_mode(probe, mode)
        except ValueError:  # no SDN shipped for this tau
            continue
        seconds[mode] = median_seconds(step, repeats, x.device)
    chosen = min(seconds, key=seconds.get)
    set_lif_mode(model, chosen)
    return {"chosen": chosen, "step_seconds": seconds, "device": str(x.device)}


def train(
    config: TrainConfig, out: str | Path, resume: bool = False, progress: bool = True
) -> Path:
    """Fit, then test the best checkpoint; returns the run folder."""
    out = start_run(config, out, resume)
    train_set, val_set, test_set, info = make_splits(config)
    module = ClassifierModule(config.to_dict(), asdict(info))
    splits = (train_set, val_set, test_set)
    return fit_and_test(module, splits, config, out, resume, progress, monitor=("val/acc", "max"))


def start_run(config: TrainConfig, out: str | Path, resume: bool) -> Path:
    """Check the run folder against --resume, quiet Lightning, seed everything."""
    out = Path(out)
    last = out / "checkpoints" / "last.ckpt"
    if resume and not last.is_file():
        raise ValueError(f"--resume: no checkpoint at {last}")
    if not resume and last.is_file():
        raise ValueError(f"{out} already holds a run; pass --resume to continue it or pick --out")
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    L.seed_everything(config.seed, workers=True, verbose=False)
    return out


def fit_and_test(
    module: L.LightningModule,
    splits: tuple[Dataset, Dataset, Dataset],
    config: TrainConfig,
    out: Path,
    resume: bool,
    progress: bool,
    monitor: tuple[str, str],
    loss_fn=classification_loss,
) -> Path:
    """Write config.yaml, choose the LIF mode (lif_mode auto), fit with checkpoints on
    `monitor` (metric, "min" or "max"), then test the best checkpoint."""
    train_set, val_set, test_set = splits
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
    train_loader = loader(train_set, config.optim.batch_size, True, config.seed)
    trainer = _trainer(config, out, progress, len(train_loader), monitor)
    if config.lif_mode == "auto":
        if resume:
            _reapply_recorded_lif_mode(module.model, out)
        else:
            _choose_and_record_lif_mode(module.model, train_loader, config, out, progress, loss_fn)
    last = out / "checkpoints" / "last.ckpt"
    trainer.fit(
        module,
        train_loader,
        loader(val_set, config.optim.batch_size, False),
        ckpt_path=str(last) if resume else None,
    )
    (timer,) = (c for c in trainer.callbacks if isinstance(c, Timer))
    # read now: loading the best checkpoint for the test restores the timer's saved state
    seconds = {stage: timer.time_elapsed(stage) for stage in ("train", "validate")}
    best = trainer.checkpoint_callback.best_model_path
    test_loader = loader(test_set, config.optim.batch_size, False)
    trainer.test(module, test_loader, ckpt_path=best or None, verbose=progress)
    seconds["test"] = timer.time_elapsed("test")
    _write_timing(seconds, out, resume)
    return out


def _write_timing(seconds: dict[str, float], out: Path, resume: bool) -> None:
    """timing.json: seconds spent in training (validation included) and in the final test; a
    resumed run adds its training time to that of the runs before it."""
    path = out / "timing.json"
    before = json.loads(path.read_text()) if resume and path.is_file() else {}
    totals = {
        f"{stage}_seconds": value + (before.get(f"{stage}_seconds", 0.0) if stage != "test" else 0)
        for stage, value in seconds.items()
    }
    path.write_text(json.dumps(totals, indent=2))


def _reapply_recorded_lif_mode(model, out: Path) -> None:
    """A resumed `auto` run continues in the mode its first start measured (lif_mode.json)."""
    record = out / "lif_mode.json"
    if record.is_file():
        set_lif_mode(model, json.loads(record.read_text())["chosen"])


def _choose_and_record_lif_mode(model, train_loader, config, out, progress, loss_fn) -> None:
    device = "cuda" if torch.cuda.is_available() and config.accelerator != "cpu" else "cpu"
    model.to(device)
    first = [t.to(device) for t in next(iter(train_loader))]
    choice = choose_lif_mode(model, first, loss_fn=loss_fn)
    model.cpu()
    if not choice:
        return
    (out / "lif_mode.json").write_text(json.dumps(choice, indent=2))
    if progress:
        seconds = ", ".join(f"{m} {s:.3f} s" for m, s in choice["step_seconds"].items())
        print(
            f"spiking layers train in {choice['chosen']} mode ({seconds} per step)",
            file=sys.stderr,
        )


def _trainer(
    config: TrainConfig,
    out: Path,
    progress: bool,
    steps_per_epoch: int,
    monitor: tuple[str, str] = ("val/acc", "max"),
) -> L.Trainer:
    metric, mode = monitor
    checkpoints = ModelCheckpoint(
        dirpath=out / "checkpoints",
        filename="best-{epoch}",
        monitor=metric,
        mode=mode,
        save_last=True,
    )
    callbacks = [checkpoints, Timer()] + ([TQDMProgressBar()] if progress else [])
    return L.Trainer(
        default_root_dir=out,
        max_epochs=config.optim.epochs,
        max_steps=config.optim.max_steps or -1,
        accelerator=config.accelerator,
        devices=1,
        logger=CSVLogger(out, name="log"),  # a resumed run logs to a new version folder
        # a run shorter than an epoch still validates (and so checkpoints) at its end
        val_check_interval=min(steps_per_epoch, config.optim.max_steps or steps_per_epoch),
        callbacks=callbacks,
        plugins=[AtomicCheckpointIO()],
        enable_progress_bar=progress,
        enable_model_summary=False,
        deterministic=False,
        log_every_n_steps=10,
    )


def load_checkpoint(path: str | Path) -> tuple[TrainConfig, TaskInfo, torch.nn.Module]:
    """Config, task and model (eval mode, CPU) of a training checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no checkpoint file at {path}")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        hparams = checkpoint["hyper_parameters"]
        config, info = TrainConfig(**hparams["config"]), TaskInfo(**hparams["task_info"])
    except (RuntimeError, KeyError, TypeError, EOFError, pickle.UnpicklingError) as error:
        first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ValueError(f"{path} is not a neurojoule training checkpoint: {first_line}") from None
    model = build_model_for_task(config, info)
    prefix = "model."
    state = {
        k[len(prefix) :]: v for k, v in checkpoint["state_dict"].items() if k.startswith(prefix)
    }
    try:
        model.load_state_dict(state)
    except RuntimeError as error:  # a state of another shape than its own config builds
        first_line = str(error).splitlines()[0]
        raise ValueError(
            f"{path}: weights do not fit the model its config builds: {first_line}"
        ) from None
    return config, info, model.eval()


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
    if split not in ("train", "val", "test"):
        raise ValueError(f"split must be one of ['train', 'val', 'test'], got {split!r}")
    config, _, model = load_checkpoint(checkpoint)
    if limit_samples is not None or whole_split:
        if split == "train":
            config.limit_train_samples = limit_samples
        else:
            config.limit_eval_samples = limit_samples
    splits = dict(zip(("train", "val", "test"), make_splits(config)[:3], strict=True))
    set_lif_mode(model, lif_mode)
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
    """Accuracy, per-layer spike rates and the energy report (with the MFI check) of a
    checkpoint on real data, run as deployed: batch norms folded into the synapses."""
    config, model, dataset = evaluation_split(
        checkpoint, split, lif_mode, limit_samples, whole_split
    )
    model = fold_batchnorm(model)
    correct = total = 0
    batches = loader(dataset, batch_size or config.optim.batch_size, False)
    with EnergyCounter(model, table=energy_table) as counter:
        for x, y in tqdm(batches, desc=f"eval {split}", unit="batch", disable=not progress):
            correct += (model(x).argmax(-1) == y).sum().item()
            total += len(y)
    report: EnergyReport = counter.report(samples=total)
    return {
        "checkpoint": str(checkpoint),
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
