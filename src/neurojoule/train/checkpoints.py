"""Training checkpoints: written atomically, loaded safely (weights_only), checked for
non-finite weights, and chosen by name.

A run folder holds checkpoints/last.ckpt (the latest state: rewritten every
`checkpoint_every_n_steps` optimizer steps, at every epoch end and when a run is
interrupted; what --resume continues from) and checkpoints/best-epoch=N.ckpt (the epoch
with the best validation metric; what the final test, the demo and the benchmarks
evaluate). Checkpoints hold tensors and plain containers only, no module paths, so a rename
of the package never breaks them.
"""

from __future__ import annotations

import dataclasses
import typing
import zipfile
from pathlib import Path

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from neurojoule.data.tasks import TaskInfo
from neurojoule.neuron.lif_layer import scale_neurons
from neurojoule.train.config import TrainConfig
from neurojoule.train.finite import non_finite_tensors
from neurojoule.train.module import build_model_for_task
from neurojoule.util.files import atomic_writer

LAST = "last.ckpt"
# model_options renamed since checkpoints were first written: (models, old key, new key)
RENAMED_OPTIONS = ((("spiking-ssm", "s4d", "spiking-ssm-lm", "s4d-lm"), "tau", "decay"),)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints written to a temporary file beside the target, then renamed into place, so
    an interrupted save never leaves a truncated checkpoint."""

    def save_checkpoint(self, checkpoint, path, storage_options=None):
        with atomic_writer(path, "wb") as handle:
            torch.save(checkpoint, handle)


def best_checkpoint(folder: Path) -> Path | None:
    """The best-epoch checkpoint in a checkpoints folder (the newest, should there be more)."""
    candidates = sorted(folder.glob("best-*.ckpt"), key=lambda p: p.stat().st_mtime)
    return candidates[-1] if candidates else None


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint file as given, or for a run folder its best checkpoint (its last one when
    it has no best yet)."""
    path = Path(path)
    if path.is_dir():
        folder = path / "checkpoints"
        found = best_checkpoint(folder) or (folder / LAST if (folder / LAST).is_file() else None)
        if found is None:
            raise ValueError(f"{path} holds no checkpoints/best-*.ckpt or checkpoints/{LAST}")
        return found
    if not path.is_file():
        raise ValueError(f"no checkpoint file or run folder at {path}")
    return path


def read_checkpoint(path: str | Path) -> dict:
    """The raw checkpoint dict, loaded with weights_only=True; a file that is not a training
    checkpoint is a ValueError."""
    path = resolve_checkpoint(path)
    _check_stored_checksums(path)
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    # weights_only runs no code from the file, so whatever fails is the file's fault; broken
    # bytes raise many kinds (struct.error, OverflowError, BadZipFile, UnpicklingError, ...)
    except Exception as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise ValueError(
            f"{path} is not a neurojoule training checkpoint "
            f"({type(error).__name__}{': ' + first_line if first_line else ''})"
        ) from None
    hparams = checkpoint.get("hyper_parameters") if isinstance(checkpoint, dict) else None
    if not (
        isinstance(hparams, dict)
        and isinstance(hparams.get("config"), dict)
        and isinstance(hparams.get("task_info"), dict)
        and isinstance(checkpoint.get("state_dict"), dict)
    ):
        raise ValueError(
            f"{path} is not a neurojoule training checkpoint (expected a state_dict and the "
            "hyper-parameters config and task_info)"
        )
    return checkpoint


def upgrade_config(values: dict) -> dict:
    """A config dict as written by an older version, with renamed model options renamed."""
    options = values.get("model_options")
    for models, old, new in RENAMED_OPTIONS:
        if values.get("model") in models and isinstance(options, dict) and old in options:
            options = {new if key == old else key: value for key, value in options.items()}
    return {**values, "model_options": options} if options is not None else values


def _check_shapes(state: dict, config: TrainConfig, info: TaskInfo, path: Path) -> None:
    """The weights fit the model the config builds, checked on a model without storage (on
    the meta device) so that a config of absurd sizes allocates nothing."""
    with torch.device("meta"):
        expected = build_model_for_task(config, info).state_dict()
    for name, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise ValueError(f"{path}: weight {name} is a {type(value).__name__}, not a tensor")
        if name in expected and tuple(value.shape) != tuple(expected[name].shape):
            raise ValueError(
                f"{path}: weights do not fit the model its config builds: {name} has shape "
                f"{list(value.shape)}, the model {list(expected[name].shape)}"
            )


def _check_task_info(info: TaskInfo, config: TrainConfig, path: Path) -> None:
    """The task_info of a checkpoint: of its config's task, each field of its annotated type
    (sizes positive integers), as the model builders expect them."""
    hints = typing.get_type_hints(TaskInfo)
    for item in dataclasses.fields(TaskInfo):
        value, kinds = getattr(info, item.name), typing.get_args(hints[item.name])
        if value is None and type(None) in kinds:
            continue
        kind = next((k for k in kinds if k is not type(None)), hints[item.name])
        fits = isinstance(value, kind) and (kind is bool or not isinstance(value, bool))
        if not fits or (kind is int and value < 1):
            raise ValueError(
                f"{path} is not a neurojoule training checkpoint: task_info {item.name} must be "
                f"{'a positive integer' if kind is int else kind.__name__}"
                f"{' or null' if type(None) in kinds else ''}, got {type(value).__name__}"
            )
    if info.name != config.task:
        raise ValueError(
            f"{path} is not a neurojoule training checkpoint: its task_info is of task "
            f"{info.name!r}, its config of {config.task!r}"
        )


def _check_stored_checksums(path: Path) -> None:
    """torch.load does not check the CRC-32 that a checkpoint's zip stores for each member, so a
    damaged weight file would load as other numbers: check them here."""
    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
    except zipfile.BadZipFile:
        return  # not a zip (or not readable as one): torch.load says what it is not
    except Exception as error:
        raise ValueError(
            f"{path} is not a neurojoule training checkpoint (a damaged zip: "
            f"{type(error).__name__}: {' '.join(str(error).split())[:200]})"
        ) from None
    if damaged is not None:
        raise ValueError(
            f"{path} is damaged: the stored bytes of {damaged} do not match their checksum"
        )


def describe_checkpoint(path: str | Path) -> str:
    """Which checkpoint this is, for reports: its file name, epoch and step."""
    path = resolve_checkpoint(path)
    checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    kind = "latest" if path.name == LAST else "best"
    epoch, step = (checkpoint.get(key, 0) for key in ("epoch", "global_step"))
    return (
        f"{path.name} ({kind}: epoch {epoch + 1 if _is_count(epoch) else '?'}, "
        f"step {step if _is_count(step) else '?'})"
    )


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def load_checkpoint(path: str | Path) -> tuple[TrainConfig, TaskInfo, torch.nn.Module]:
    """Config, task and model (eval mode, CPU) of a training checkpoint or run folder."""
    path = resolve_checkpoint(path)
    checkpoint = read_checkpoint(path)
    try:
        hparams = checkpoint["hyper_parameters"]
        config = TrainConfig(**upgrade_config(hparams["config"]))
        info = TaskInfo(**hparams["task_info"])
    except (KeyError, TypeError) as error:
        raise ValueError(f"{path} is not a neurojoule training checkpoint: {error}") from None
    _check_task_info(info, config, path)
    state = {
        key.removeprefix("model."): value
        for key, value in checkpoint["state_dict"].items()
        if key.startswith("model.")
    }
    bad = non_finite_tensors(state)
    if bad:
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        raise ValueError(f"{path}: weight {bad[0]}{more} holds NaN or Inf; expected finite numbers")
    _check_shapes(state, config, info, path)
    model = build_model_for_task(config, info)
    try:
        model.load_state_dict(state)
    except RuntimeError as error:  # a state of another shape than its own config builds
        first_line = str(error).splitlines()[0]
        raise ValueError(
            f"{path}: weights do not fit the model its config builds: {first_line}"
        ) from None
    scales = hparams.get("neuron_scales")  # written by `neurojoule evolve neurons`
    if scales is not None:
        try:
            scale_neurons(model, scales)
        except (ValueError, TypeError, AttributeError) as error:
            raise ValueError(f"{path}: bad neuron_scales: {error}") from None
    return config, info, model.eval()
