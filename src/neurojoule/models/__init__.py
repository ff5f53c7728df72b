"""Whole networks, one file a family, and a registry of them by name."""

from neurojoule.models.dense import DenseSNN
from neurojoule.models.registry import (
    ModelEntry,
    build_model,
    model_entry,
    model_names,
    register_model,
)
from neurojoule.models.ssm import CausalLM, SequenceClassifier, SSMConfig, masked_mean, ssm_config

__all__ = [
    "CausalLM",
    "DenseSNN",
    "ModelEntry",
    "SSMConfig",
    "SequenceClassifier",
    "build_model",
    "masked_mean",
    "model_entry",
    "model_names",
    "register_model",
    "ssm_config",
]
