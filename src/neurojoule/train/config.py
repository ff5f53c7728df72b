"""Training configuration: one dataclass, YAML files by name, dotted overrides from the CLI.

Every field is checked against its annotation when a config is made (from a YAML file, from
`--set key=value`, from a checkpoint or in code): an int field takes integers only (not
booleans, not floats), a float field any finite real number, a str field a string, a dict
field a mapping of names to plain YAML data. Anything else is a ValueError in one line that
names the field, what it expects and what came.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
import os
import reprlib
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import yaml

from neurojoule.neuron import LIF_MODES as NEURON_LIF_MODES

# a training mode of the spiking layers; "auto" measures which is fastest on the device
LIF_MODES = ("auto", *NEURON_LIF_MODES)
EVAL_LIF_MODES = NEURON_LIF_MODES  # evaluation runs one mode, named
# "ce": cross-entropy of the logits; "tet": the mean over time steps of each step's
# cross-entropy (temporal efficient training, Deng et al., ICLR 2022), for models with
# per-step outputs (`step_logits`); inference is the same either way
LOSSES = ("ce", "tet")
# how a supernet run (a config with a search space) draws subnets: "uniform", one subnet per
# mini-batch drawn uniformly from the space (Auto-Spikformer's rule); "sandwich", the largest,
# the smallest and two random subnets per mini-batch, their losses summed
SAMPLING_RULES = ("uniform", "sandwich")
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")  # Lightning's names
# Lightning's names; the DDP family only: every rank holds the whole model
STRATEGIES = ("auto", "ddp", "ddp_find_unused_parameters_true")
SEED_MAX = 2**32 - 1  # numpy and Lightning take seeds in [0, 2**32)
INT_MAX = 2**63 - 1  # what torch and Lightning count in
# a task trains with the config of its own name, unless it is named here
TASK_CONFIGS = {"kjv": "kjv-cpu"}
# model_options and task_options hold plain YAML data, at most this much of it
_OPTION_NODES, _OPTION_DEPTH = 10_000, 32


@dataclass
class OptimConfig:
    lr: float = 0.01
    weight_decay: float = 0.01
    batch_size: int = 32
    epochs: int = 10
    warmup_fraction: float = 0.1  # of all steps, linear warm-up before the cosine decay
    max_steps: int | None = None  # stop early (CPU smoke runs); None: epochs decide

    def __post_init__(self):
        _check_types(self, "optim.")
        if not self.lr > 0:
            raise ValueError(f"optim.lr must be positive, got {self.lr}")
        for name in ("batch_size", "epochs"):
            if getattr(self, name) < 1:
                raise ValueError(f"optim.{name} must be positive, got {getattr(self, name)}")
        if self.weight_decay < 0 or not 0 <= self.warmup_fraction < 1:
            raise ValueError(
                "optim.weight_decay must be >= 0 and optim.warmup_fraction in [0, 1), got "
                f"{self.weight_decay} and {self.warmup_fraction}"
            )
        _check_positive_or_none("optim.max_steps", self.max_steps)


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
    # processes per node and nodes of a data-parallel run (Lightning's DDP); each process
    # takes optim.batch_size samples a step, so a step trains on batch_size x world size
    devices: int = 1
    num_nodes: int = 1
    strategy: str = "auto"
    # checkpoints/last.ckpt is rewritten every this many optimizer steps (and at every epoch
    # end), so a killed run loses at most this many steps
    checkpoint_every_n_steps: int = 50
    # a checkpoint whose model weights start a new run (fine-tuning); a resumed run takes its
    # weights from last.ckpt instead
    init: str | None = None
    # a search space (a name of neurojoule.search or a YAML file): the run trains the
    # weight-entangled supernet of the space's model (`neurojoule supernet train`), drawing
    # subnets by `sampling`, one of SAMPLING_RULES
    space: str | None = None
    sampling: str = "uniform"

    def __post_init__(self):
        if isinstance(self.optim, Mapping):
            self.optim = _from_dict(OptimConfig, self.optim, "optim")
        _check_types(self, "")
        for name, choices in (
            ("lif_mode", LIF_MODES),
            ("eval_lif_mode", EVAL_LIF_MODES),
            ("loss", LOSSES),
            ("accelerator", ACCELERATORS),
            ("strategy", STRATEGIES),
            ("sampling", SAMPLING_RULES),
        ):
            if getattr(self, name) not in choices:
                raise ValueError(
                    f"{name} must be one of {list(choices)}, got {_shown(getattr(self, name))}"
                )
        if self.spike_rate_penalty < 0:
            raise ValueError(f"spike_rate_penalty must be >= 0, got {self.spike_rate_penalty}")
        if not 0 <= self.spike_rate_target < 1:
            raise ValueError(f"spike_rate_target must be in [0, 1), got {self.spike_rate_target}")
        if not 0 <= self.seed <= SEED_MAX:
            raise ValueError(f"seed must be in [0, 2**32 - 1], got {self.seed}")
        for name in ("devices", "num_nodes"):  # ints, checked by type above
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("checkpoint_every_n_steps", "limit_train_samples", "limit_eval_samples"):
            _check_positive_or_none(name, getattr(self, name))
        if self.space is None and self.sampling != SAMPLING_RULES[0]:
            raise ValueError(
                f"sampling {self.sampling!r} draws subnets of a supernet: it needs a space"
            )
        _check_task(self.task, self.task_options)
        _check_known_model(self.model)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# ---- checks of field values --------------------------------------------------------------

_repr = reprlib.Repr()
_repr.maxstring = _repr.maxother = 60
_repr.maxlist = _repr.maxdict = _repr.maxtuple = _repr.maxset = 4
_repr.maxlevel = 3


def _shown(value: object) -> str:
    """`value` on one line, cut short (also when it is huge or deeply nested), with its type."""
    return f"{' '.join(_repr.repr(value).split())} ({type(value).__name__})"


def _check_types(config: object, prefix: str) -> None:
    """Each field of the dataclass `config` checked against its annotation and normalised
    (floats as float, mappings as dict, a path as str)."""
    hints = _type_hints(type(config))
    for item in dataclasses.fields(config):
        name = prefix + item.name
        value = getattr(config, item.name)
        setattr(config, item.name, _checked(name, hints[item.name], value))


@functools.cache
def _type_hints(cls: type) -> dict[str, object]:
    return typing.get_type_hints(cls)


def _checked(name: str, hint: object, value: object) -> object:
    arguments = typing.get_args(hint)
    if type(None) in arguments:  # "X | None"
        if value is None:
            return None
        (hint,) = (kind for kind in arguments if kind is not type(None))
        expected = f"{_EXPECTED[hint]} or null"
    else:
        expected = _EXPECTED.get(hint, "")
    if hint is int:
        if isinstance(value, numbers.Integral) and not isinstance(value, bool):
            if abs(int(value)) <= INT_MAX:
                return int(value)
            expected = "an integer of at most 2**63 - 1"
    elif hint is float:
        if isinstance(value, numbers.Real) and not isinstance(value, bool):
            try:
                number = float(value)
            except OverflowError:
                number = math.inf
            if math.isfinite(number):
                return number
            expected = "a finite number"
    elif hint is str:
        if isinstance(value, str):
            return value
        if name == "task_root" and isinstance(value, os.PathLike):
            return os.fspath(value)
    elif hint is dict:
        if isinstance(value, Mapping):
            _check_plain(name, value)
            return dict(value)
    elif hint is OptimConfig:
        if isinstance(value, OptimConfig):
            return value
        expected = "a section (a mapping of optim settings)"
    else:  # a field of a type this module does not check yet
        raise TypeError(f"{name}: no check for fields of type {hint}")
    raise ValueError(f"{name} must be {expected}, got {_shown(value)}")


_EXPECTED = {
    int: "an integer",
    float: "a number",
    str: "a string",
    dict: "a mapping of names to values",
}


def _check_plain(name: str, options: Mapping) -> None:
    """`options` hold what YAML writes (mappings with string keys, lists, strings, finite
    numbers, booleans, null), and not too much of it."""
    budget = [_OPTION_NODES]

    def visit(value: object, where: str, depth: int) -> None:
        budget[0] -= 1
        if budget[0] < 0 or depth > _OPTION_DEPTH:
            raise ValueError(
                f"{name} is too large or too deeply nested (more than {_OPTION_NODES} values "
                f"or {_OPTION_DEPTH} levels)"
            )
        if isinstance(value, Mapping):
            for key, item in value.items():
                if not isinstance(key, str):
                    raise ValueError(f"{where} must have string keys, got {_shown(key)}")
                visit(item, f"{where}.{key}", depth + 1)
        elif isinstance(value, (list, tuple)):
            for index, item in enumerate(value):
                visit(item, f"{where}[{index}]", depth + 1)
        elif isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{where} must be a finite number, got {value}")
        elif not (value is None or isinstance(value, (str, bool, int, float))):
            raise ValueError(
                f"{where} must be a string, number, boolean, list, mapping or null, "
                f"got {_shown(value)}"
            )

    visit(options, name, 0)


def _check_positive_or_none(name: str, value: int | None) -> None:
    if value is not None and value < 1:
        raise ValueError(f"{name} must be a positive integer or null, got {value!r}")


def _check_task(task: str, options: dict) -> None:
    """A known task with options of the right names, types and ranges (checked here, when the
    config loads, rather than when the data are built)."""
    from neurojoule.data import check_task_options

    check_task_options(task, options)


def _check_known_model(model: str) -> None:
    from neurojoule.models import model_entry

    model_entry(model)  # a ValueError naming the known models


def _from_dict(cls, values: object, where: str):
    if not isinstance(values, Mapping):
        raise ValueError(f"{where} must be a mapping of settings, got {_shown(values)}")
    known = [f.name for f in dataclasses.fields(cls)]
    unknown = [key for key in values if key not in known]
    if unknown:
        listed = sorted(_repr.repr(key) if not isinstance(key, str) else key for key in unknown)
        raise ValueError(f"unknown {where} keys {listed}; expected some of {sorted(known)}")
    return cls(**values)


# ---- configs by name ---------------------------------------------------------------------


def config_names() -> list[str]:
    return sorted(p.stem for p in _config_dir().glob("*.yaml"))


def _config_dir() -> Path:
    return Path(str(resources.files("neurojoule") / "configs"))


def default_config(task: str) -> str:
    """The name of the config `neurojoule train` uses for `task` when none is given."""
    _check_task(task, {})
    name = TASK_CONFIGS.get(task, task)
    if name not in config_names():
        raise ValueError(f"task {task!r} has no default config; give one of {config_names()}")
    return name


def describe_configs() -> list[dict]:
    """Each shipped config: its name, the task and model it was written for (model None where
    it leaves the model to the command line) and the first sentence of its comment."""
    rows = []
    for name in config_names():
        path = _config_dir() / f"{name}.yaml"
        values = read_config_file(path)
        rows.append(
            {
                "name": name,
                "task": values.get("task", TrainConfig.task),
                "model": values.get("model"),
                "description": _first_sentence(path.read_text(encoding="utf-8")),
            }
        )
    return rows


def _first_sentence(text: str) -> str:
    """The first sentence of a YAML file's leading comment (it may run over several lines)."""
    words = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        for word in line.lstrip("#").split():
            words.append(word)
            if word.endswith("."):
                return " ".join(words)
    return " ".join(words)


def format_config_table(rows: list[dict]) -> str:
    """The table `neurojoule configs` prints: a header row, then one row per config."""
    header = {"name": "config", "task": "task", "model": "model", "description": "description"}
    table = [header, *({**row, "model": row["model"] or "-"} for row in rows)]
    widths = {key: max(len(str(row[key])) for row in table) for key in ("name", "task", "model")}
    return "\n".join(
        f"{row['name']:<{widths['name']}}  {row['task']:<{widths['task']}}  "
        f"{row['model']:<{widths['model']}}  {row['description']}".rstrip()
        for row in table
    )


def config_path(name_or_path: str | os.PathLike) -> Path:
    """A config name (see config_names()) as its shipped file, or a path to a YAML file."""
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise ValueError(f"expected a config name or path, got {_shown(name_or_path)}")
    path = Path(name_or_path)
    if not path.suffix:
        path = _config_dir() / f"{path}.yaml"
    try:
        found = path.is_file()
    except (OSError, ValueError):  # a name too long, or holding a NUL
        found = False
    if not found:
        raise ValueError(
            f"no config {_repr.repr(str(name_or_path))}: expected a YAML file or one of "
            f"{config_names()}"
        )
    return path


def read_config_file(path: str | os.PathLike) -> dict:
    """The settings of a YAML config file: a mapping holding at least one setting."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ValueError(f"{path} is not UTF-8 text (byte {error.start})") from None
    except OSError as error:
        raise ValueError(f"{path} cannot be read: {error.strerror or error}") from None
    try:
        values = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ValueError(f"{path} is not valid YAML: {_one_line(error)}") from None
    except RecursionError:
        raise ValueError(f"{path} is nested too deeply to be a config") from None
    if values is None or values == {}:
        raise ValueError(
            f"{path} holds no settings; expected a mapping such as 'task: listops' (an empty "
            "config would train the defaults, which is never what a file means)"
        )
    if not isinstance(values, dict):
        raise ValueError(f"{path} must hold a mapping of settings, got {_shown(values)}")
    return values


def written_for(name_or_path: str | os.PathLike) -> str:
    """The task a config file was written for (the default task where it names none)."""
    return read_config_file(config_path(name_or_path)).get("task", TrainConfig.task)


def load_config(
    name_or_path: str | os.PathLike, overrides: list[str] | None = None, **fields
) -> TrainConfig:
    """A config by name (see config_names()) or YAML path, then `fields`, then "a.b=value"
    overrides (values parsed as YAML, so numbers, booleans and lists work)."""
    values = read_config_file(config_path(name_or_path))
    values.update({k: v for k, v in fields.items() if v is not None})
    for item in overrides or []:
        _apply_override(values, item)
    return _from_dict(TrainConfig, values, "config")


def _apply_override(values: dict, item: str) -> None:
    if not isinstance(item, str):
        raise ValueError(f"an override must be a string key=value, got {_shown(item)}")
    key, sep, raw = item.partition("=")
    parts = key.strip().split(".")
    if not sep or not all(part.strip() for part in parts):
        raise ValueError(
            f"override {_repr.repr(item)} must look like key=value or section.key=value"
        )
    *parents, leaf = (part.strip() for part in parts)
    target = values
    for depth, part in enumerate(parents):
        target = target.setdefault(part, {})
        if not isinstance(target, dict):
            section = ".".join(parents[: depth + 1])
            raise ValueError(f"override {_repr.repr(item)}: {section} is not a section")
    try:
        target[leaf] = yaml.safe_load(raw)
    except yaml.YAMLError as error:
        raise ValueError(
            f"override {_repr.repr(item)}: the value is not valid YAML: {_one_line(error)}"
        ) from None
    except RecursionError:
        raise ValueError(f"override {_repr.repr(item)}: the value is nested too deeply") from None


def _one_line(error: object, limit: int = 300) -> str:
    flat = " ".join(str(error).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."
