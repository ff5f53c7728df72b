"""Whole networks, one file a family, and a registry of them by name."""

from spikeforge.models.dense import DenseSNN
from spikeforge.models.registry import (
    ModelEntry,
    build_model,
    model_entry,
    model_names,
    register_model,
)
from spikeforge.models.ssm import CausalLM, SequenceClassifier, SSMConfig, masked_mean, ssm_config

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
