"""Training configuration: one dataclass, YAML files by name, dotted overrides from the CLI."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import yaml

LIF_MODES = ("auto", "bptt", "sltt", "sdn")
# "ce": cross-entropy of the logits; "tet": the mean over time steps of each step's
# cross-entropy (temporal efficient training, Deng et al., ICLR 2022), for models with
# per-step outputs (`step_logits`); inference is the same either way
LOSSES = ("ce", "tet")


@dataclass
class OptimConfig:
    lr: float = 0.01
    weight_decay: float = 0.01
    batch_size: int = 32
    epochs: int = 10
    warmup_fraction: float = 0.1  # of all steps, linear warm-up before the cosine decay
    max_steps: int | None = None  # stop early (CPU smoke runs); None: epochs decide


@dataclass
class TrainConfig:
    """Everything a run needs; `model_options` go to the model builder, `task_options` to
    neurojoule.data.classification_task."""

    model: str = "spiking-ssm"
    task: str = "listops"
    task_root: str | None = None
    task_options: dict = field(default_factory=dict)
    model_options: dict = field(default_factory=dict)
    optim: OptimConfig = field(default_factory=OptimConfig)
    lif_mode: str = "auto"  # training mode of the spiking layers; auto: fastest, measured
    eval_lif_mode: str = "bptt"  # reported accuracy and rates use the exact LIF
    # optional: adds penalty x max(0, mean firing rate of the spiking layers - target) to the
    # training loss; with target 0 every spike costs, above 0 only the rate beyond it
    spike_rate_penalty: float = 0.0
    spike_rate_target: float = 0.0
    loss: str = "ce"  # one of LOSSES
    limit_train_samples: int | None = None  # a seeded subset, for CPU-sized runs
    limit_eval_samples: int | None = None
    seed: int = 0
    accelerator: str = "auto"
    # checkpoints/last.ckpt is rewritten every this many optimizer steps (and at every epoch
    # end), so a killed run loses at most this many steps
    checkpoint_every_n_steps: int = 50

    def __post_init__(self):
        if isinstance(self.optim, dict):
            self.optim = _from_dict(OptimConfig, self.optim, "optim")
        if self.lif_mode not in LIF_MODES:
            raise ValueError(f"lif_mode must be one of {LIF_MODES}, got {self.lif_mode!r}")
        if self.eval_lif_mode not in LIF_MODES[1:]:
            raise ValueError(
                f"eval_lif_mode must be one of {LIF_MODES[1:]}, got {self.eval_lif_mode!r}"
            )
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        if self.spike_rate_penalty < 0:
            raise ValueError(f"spike_rate_penalty must be >= 0, got {self.spike_rate_penalty}")
        if not 0 <= self.spike_rate_target < 1:
            raise ValueError(f"spike_rate_target must be in [0, 1), got {self.spike_rate_target}")
        for name in ("lr", "batch_size", "epochs"):
            if not getattr(self.optim, name) > 0:
                raise ValueError(f"optim.{name} must be positive, got {getattr(self.optim, name)}")
        if self.optim.weight_decay < 0 or not 0 <= self.optim.warmup_fraction < 1:
            raise ValueError(
                "optim.weight_decay must be >= 0 and optim.warmup_fraction in [0, 1), got "
                f"{self.optim.weight_decay} and {self.optim.warmup_fraction}"
            )
        for name, value in (
            ("optim.max_steps", self.optim.max_steps),
            ("checkpoint_every_n_steps", self.checkpoint_every_n_steps),
            ("limit_train_samples", self.limit_train_samples),
            ("limit_eval_samples", self.limit_eval_samples),
        ):
            if value is not None and not (isinstance(value, int) and value >= 1):
                raise ValueError(f"{name} must be a positive integer or null, got {value!r}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _from_dict(cls, values: dict, where: str):
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(values).difference(known)
    if unknown:
        raise ValueError(
            f"unknown {where} keys {sorted(unknown)}; expected some of {sorted(known)}"
        )
    return cls(**values)


def config_names() -> list[str]:
    return sorted(p.stem for p in _config_dir().glob("*.yaml"))


def _config_dir() -> Path:
    return Path(str(resources.files("neurojoule") / "configs"))


def load_config(name_or_path: str, overrides: list[str] | None = None, **fields) -> TrainConfig:
    """A config by name (see config_names()) or YAML path, then `fields`, then "a.b=value"
    overrides (values parsed as YAML, so numbers, booleans and lists work)."""
    path = Path(name_or_path)
    if not path.suffix:
        path = _config_dir() / f"{name_or_path}.yaml"
    if not path.is_file():
        raise ValueError(f"no config {name_or_path!r}: expected a file or one of {config_names()}")
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ValueError(f"{path} is not valid YAML: {error}") from None
    values.update({k: v for k, v in fields.items() if v is not None})
    for item in overrides or []:
        _apply_override(values, item)
    return _from_dict(TrainConfig, values, "config")


def _apply_override(values: dict, item: str) -> None:
    key, sep, raw = item.partition("=")
    if not sep or not key:
        raise ValueError(f"override {item!r} must look like key=value or section.key=value")
    *parents, leaf = key.strip().split(".")
    target = values
    for part in parents:
        target = target.setdefault(part, {})
        if not isinstance(target, dict):
            raise ValueError(f"override {item!r}: {part!r} is not a section")
    target[leaf] = yaml.safe_load(raw)
