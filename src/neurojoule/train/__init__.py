"""Orchestration: training runs through Lightning, evaluation of checkpoints, SDN training and
the demo. Entry points: `train`, `train_lm`, `evaluate`, `evaluate_lm`, `load_config`,
`load_checkpoint`, `TrainConfig`, `TrainResult`.

They load on first use, so that importing a light part (train.config, for the command
line's choices) does not import Lightning.
"""

import importlib

_HOMES = {
    "TrainConfig": "config",
    "load_config": "config",
    "TrainResult": "fit",
    "train": "fit",
    "evaluate": "evaluation",
    "load_checkpoint": "checkpoints",
    "train_lm": "language_model",
    "evaluate_lm": "language_model",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
