"""Training runs through Lightning: fit with checkpoints, then test the best one.

A run folder holds config.yaml, lif_mode.json (the training mode of the spiking SSM layers,
under `lif_mode: auto`), checkpoints/ (see train/checkpoints.py), log/version_N/metrics.csv
(loss, accuracy and per-layer spike rates) and timing.json. A run killed at any point and
resumed with --resume ends with the same weights, bit for bit, as the uninterrupted run on
the same machine: checkpoints carry the optimizer, schedule, every random generator and the
position in the epoch's shuffled order. Ctrl-C stops at the end of the current step, writes
last.ckpt and raises KeyboardInterrupt; a second Ctrl-C exits at once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import lightning as L
import torch
import yaml
from lightning.pytorch.callbacks import (
    Callback,
    Checkpoint,
    ModelCheckpoint,
    Timer,
    TQDMProgressBar,
)
from lightning.pytorch.loggers import CSVLogger

from neurojoule.train import lif_mode
from neurojoule.train.checkpoints import (
    AtomicCheckpointIO,
    best_checkpoint,
    read_checkpoint,
    upgrade_config,
)
from neurojoule.train.config import TrainConfig
from neurojoule.train.finite import non_finite_tensors
from neurojoule.train.module import ClassifierModule
from neurojoule.train.run_folder import RunFolder
from neurojoule.train.splits import evaluation_loader, make_splits, training_loader
from neurojoule.util.files import atomic_write_text


@dataclass
class TrainResult:
    run_dir: Path
    tested_checkpoint: Path  # the checkpoint the final test evaluated (the best epoch's)
    test_metrics: dict[str, float]  # e.g. test/acc, test/loss, test/spike_rate/mean
    lif_mode: dict | None  # lif_mode.json's record; None without spiking SSM layers


def format_train_result(config: TrainConfig, result: TrainResult) -> str:
    """What `neurojoule train` prints: the test metrics of the tested checkpoint, then the run
    folder."""
    metrics = ", ".join(f"{name} {value:.4g}" for name, value in result.test_metrics.items())
    return (
        f"{config.model} on {config.task}, {result.tested_checkpoint.name}: {metrics}\n"
        f"run written to {result.run_dir}; evaluate with: neurojoule eval {result.run_dir}"
    )


def train(
    config: TrainConfig,
    out: str | Path,
    resume: bool = False,
    progress: bool = True,
    cut: CurveCut | None = None,
) -> TrainResult:
    """Fit a classifier, then test its best checkpoint; `cut` may stop it early."""
    with RunFolder(out, resume) as folder:
        seed_everything(config.seed)
        train_set, val_set, test_set, info = make_splits(config)
        module = ClassifierModule(config.to_dict(), asdict(info))
        splits = (train_set, val_set, test_set)
        monitor = ("val/acc", "max")
        return fit_and_test(module, splits, config, folder, progress, monitor, cut=cut)


def seed_everything(seed: int) -> None:
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    L.seed_everything(seed, workers=True, verbose=False)


def fit_and_test(
    module: L.LightningModule,
    splits,
    config: TrainConfig,
    folder: RunFolder,
    progress: bool,
    monitor: tuple[str, str],
    loss_fn=lif_mode.classification_loss,
    cut: CurveCut | None = None,
) -> TrainResult:
    """Write config.yaml, settle the LIF mode, fit with checkpoints on `monitor` (metric,
    "min" or "max"), then test the best checkpoint. With a `cut`, validation runs every
    `cut.step` steps (not every epoch) and the cut may end the fit at step `cut.step`."""
    train_set, val_set, test_set = splits
    batch = config.optim.batch_size
    if config.init is not None and not folder.resume:  # a resumed run has its own weights
        load_initial_weights(module.model, config.init)
    if folder.writer:
        atomic_write_text(
            folder.path / "config.yaml", yaml.safe_dump(config.to_dict(), sort_keys=False)
        )
    train_loader = training_loader(train_set, batch, config.seed, world_size(config))
    choice = _settle_lif_mode(module, train_loader, config, folder, progress, loss_fn)
    module.total_steps = min(
        config.optim.epochs * len(train_loader), config.optim.max_steps or float("inf")
    )
    latest = LatestCheckpoint(folder.last, config.checkpoint_every_n_steps)
    trainer = _trainer(config, folder, progress, len(train_loader), monitor, latest, cut)
    with _stop_on_ctrl_c(latest), _quiet_lightning_notes():
        trainer.fit(
            module,
            train_loader,
            evaluation_loader(val_set, batch),
            ckpt_path=str(folder.last) if folder.resume else None,
        )
    if latest.interrupted:
        raise KeyboardInterrupt(f"{folder.last} holds the last step; continue with --resume")
    (timer,) = (c for c in trainer.callbacks if isinstance(c, Timer))
    # read now: loading the best checkpoint for the test restores the timer's saved state
    seconds = {stage: timer.time_elapsed(stage) for stage in ("train", "validate")}
    tested = best_checkpoint(folder.checkpoints) or folder.last
    with _quiet_lightning_notes():
        test_loader = evaluation_loader(test_set, batch)
        metrics = trainer.test(module, test_loader, ckpt_path=tested, verbose=False)
    seconds["test"] = timer.time_elapsed("test")
    _leave_process_group()
    folder.add_seconds(seconds)
    test_metrics = {name: float(value) for name, value in (metrics[0] if metrics else {}).items()}
    return TrainResult(folder.path, tested, test_metrics, choice)


def _leave_process_group() -> None:
    """End a data-parallel run's process group once every rank is done with it. Left to
    the interpreter's exit, gloo's threads can outlive it: a rank then aborts ("terminate
    called without an active exception") after a run that went well."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


def world_size(config: TrainConfig) -> int:
    """The processes of a run: devices per node x nodes."""
    return config.devices * config.num_nodes


def load_initial_weights(model: torch.nn.Module, checkpoint: str | Path) -> None:
    """Copy the model weights of a training checkpoint (a run folder: its best one) into
    `model`; a one-line ValueError where they do not fit it, by name or by shape."""
    state = {
        key.removeprefix("model."): value
        for key, value in read_checkpoint(checkpoint)["state_dict"].items()
        if key.startswith("model.")
    }
    where = f"init {checkpoint}"
    bad = non_finite_tensors(state)
    if bad:
        raise ValueError(f"{where}: weight {bad[0]} holds NaN or Inf; expected finite numbers")
    expected = model.state_dict()
    missing = [name for name in expected if name not in state]
    extra = [name for name in state if name not in expected]
    if missing or extra:
        raise ValueError(
            f"{where}: its weights do not fit the model: "
            + "; ".join(
                f"{what} {names[:3]}{' and more' if len(names) > 3 else ''}"
                for what, names in (("the model has no", extra), ("it lacks", missing))
                if names
            )
        )
    for name, value in state.items():
        if not isinstance(value, torch.Tensor) or value.shape != expected[name].shape:
            shape = list(value.shape) if isinstance(value, torch.Tensor) else "no tensor"
            raise ValueError(
                f"{where}: its weights do not fit the model: {name} has shape {shape} there, "
                f"{list(expected[name].shape)} in the model (set the model options of the "
                "checkpoint's model)"
            )
    model.load_state_dict(state)


def with_init_model_options(config: TrainConfig) -> TrainConfig:
    """`config` with the model options of its init checkpoint beneath its own, where that
    checkpoint holds the same model: `train MODEL --init CKPT` then builds the checkpoint's
    shapes (an extracted subnet's, say) without restating them."""
    if config.init is None:
        return config
    saved = upgrade_config(read_checkpoint(config.init)["hyper_parameters"]["config"])
    options = saved.get("model_options")
    if saved.get("model") != config.model or not isinstance(options, dict):
        return config
    return replace(config, model_options={**options, **config.model_options})


def _settle_lif_mode(module, train_loader, config, folder, progress, loss_fn) -> dict | None:
    """lif_mode auto: reuse the recorded choice on --resume, else choose and record it."""
    if config.lif_mode != "auto":
        return None
    if folder.resume:
        return lif_mode.reapply_recorded(module.model, folder.path)
    device = "cuda" if torch.cuda.is_available() and config.accelerator != "cpu" else "cpu"
    first_batch = next(iter(evaluation_loader(train_loader.dataset, config.optim.batch_size)))
    choice = lif_mode.choose_and_record(
        module.model, first_batch, folder, loss_fn, device, world_size(config)
    )
    if choice and progress:
        print(
            f"spiking layers train in {choice['chosen']} mode ({choice['rule']})", file=sys.stderr
        )
    return choice


class LatestCheckpoint(Checkpoint):
    """Keeps `path` (last.ckpt) at the latest state: every `every_n_steps` optimizer steps, at
    the end of every validation, at the step where Ctrl-C arrived, and at the end of training
    where that step was not saved yet."""

    def __init__(self, path: Path, every_n_steps: int):
        self.path, self.every_n_steps = path, every_n_steps
        self.interrupted = False
        self._saved_step = -1

    def _save(self, trainer) -> None:
        trainer.save_checkpoint(self.path)
        self._saved_step = trainer.global_step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.world_size > 1:  # every rank stops at the same step, saving together
            self.interrupted = trainer.strategy.reduce_boolean_decision(self.interrupted, all=False)
        if self.interrupted or trainer.global_step % self.every_n_steps == 0:
            self._save(trainer)
        if self.interrupted:
            trainer.should_stop = True

    def on_validation_end(self, trainer, pl_module):
        if not trainer.sanity_checking:
            self._save(trainer)

    def on_train_end(self, trainer, pl_module):
        if trainer.global_step != self._saved_step:
            self._save(trainer)


class CurveCut(Callback):
    """A learning-curve cut: at the validation of step `step`, stop the run when its val/acc
    is below `threshold` (None: never). The decision is kept in the checkpoints, so that a
    resumed run that was cut stays cut."""

    def __init__(self, step: int, threshold: float | None):
        if step < 1:
            raise ValueError(f"a curve cut needs a step >= 1, got {step}")
        self.step, self.threshold = step, threshold
        self.accuracy: float | None = None  # val/acc at `step`
        self.cut = False

    def on_validation_end(self, trainer, pl_module):
        if trainer.sanity_checking or trainer.global_step != self.step:
            return
        self.accuracy = float(trainer.callback_metrics["val/acc"])
        if self.threshold is not None and self.accuracy < self.threshold:
            self.cut = True
            trainer.should_stop = True

    def on_train_start(self, trainer, pl_module):
        if self.cut:
            trainer.should_stop = True

    def state_dict(self) -> dict:
        return {"accuracy": self.accuracy, "cut": self.cut}

    def load_state_dict(self, state_dict: dict) -> None:
        self.accuracy, self.cut = state_dict["accuracy"], state_dict["cut"]


# Lightning's notes that say nothing to a user of this command: its own deprecated call, tiny
# runs against its logging interval, and the checkpoint folder that --resume expects
LIGHTNING_NOTES = (".*LeafSpec", ".*smaller than the logging interval", ".*exists and is not empty")


@contextlib.contextmanager
def _quiet_lightning_notes():
    with warnings.catch_warnings():
        for message in LIGHTNING_NOTES:
            warnings.filterwarnings("ignore", message=message)
        yield


@contextlib.contextmanager
def _stop_on_ctrl_c(latest: LatestCheckpoint):
    """While fitting, the first SIGINT asks for a stop after the current step (with a
    checkpoint); a second one ends the process at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handle(signum, frame):
        if latest.interrupted:
            print("neurojoule: interrupted", file=sys.stderr)
            os._exit(130)
        latest.interrupted = True
        print("neurojoule: stopping after this step (Ctrl-C again to quit now)", file=sys.stderr)

    previous = signal.signal(signal.SIGINT, handle)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class _StderrProgressBar(TQDMProgressBar):
    """Lightning's bars, on stderr: stdout carries results only."""

    def init_train_tqdm(self):
        with contextlib.redirect_stdout(sys.stderr):
            return super().init_train_tqdm()

    def init_validation_tqdm(self):
        with contextlib.redirect_stdout(sys.stderr):
            return super().init_validation_tqdm()

    def init_test_tqdm(self):
        with contextlib.redirect_stdout(sys.stderr):
            return super().init_test_tqdm()


def _trainer(
    config: TrainConfig,
    folder: RunFolder,
    progress: bool,
    steps_per_epoch: int,
    monitor: tuple[str, str],
    latest: LatestCheckpoint,
    cut: CurveCut | None = None,
) -> L.Trainer:
    metric, mode = monitor
    # a run shorter than an epoch still validates (and so checkpoints) at its end
    validation = {
        "val_check_interval": min(steps_per_epoch, config.optim.max_steps or steps_per_epoch)
    }
    if cut is not None:  # every cut.step steps, across epochs
        validation = {"val_check_interval": cut.step, "check_val_every_n_epoch": None}
    best = ModelCheckpoint(
        dirpath=folder.checkpoints, filename="best-{epoch}", monitor=metric, mode=mode
    )
    # checkpoint callbacks run last, in this order: the best one's state is saved with last.ckpt
    callbacks = [best, latest, Timer()] + ([_StderrProgressBar()] if progress else [])
    callbacks += [cut] if cut is not None else []
    return L.Trainer(
        default_root_dir=folder.path,
        max_epochs=config.optim.epochs,
        max_steps=config.optim.max_steps or -1,
        accelerator=config.accelerator,
        devices=config.devices,
        num_nodes=config.num_nodes,
        strategy=config.strategy,
        use_distributed_sampler=False,  # the training order splits itself (train/splits.py)
        logger=CSVLogger(folder.path, name="log"),  # a resumed run logs to a new version folder
        **validation,
        num_sanity_val_steps=0,
        callbacks=callbacks,
        plugins=[AtomicCheckpointIO()],
        enable_progress_bar=progress,
        enable_model_summary=False,
        deterministic=False,
        log_every_n_steps=10,
    )
