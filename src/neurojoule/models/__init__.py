"""Whole networks, one family a module, each registering its builders by name (registry.py)."""

from neurojoule.models.dense import DenseSNN, DenseSNNConfig
from neurojoule.models.registry import (
    ModelEntry,
    build_model,
    list_models,
    merge_config,
    model_entry,
    parameter_count,
    register_model,
)
from neurojoule.models.spikformer import Spikformer, SpikformerConfig
from neurojoule.models.spiking_mlp import SpikingMLP, SpikingMLPConfig
from neurojoule.models.ssm import CausalLM, SequenceClassifier, masked_mean
from neurojoule.models.ssm_config import SSMConfig, ssm_config

__all__ = [
    "CausalLM",
    "DenseSNN",
    "DenseSNNConfig",
    "ModelEntry",
    "SSMConfig",
    "SequenceClassifier",
    "Spikformer",
    "SpikformerConfig",
    "SpikingMLP",
    "SpikingMLPConfig",
    "build_model",
    "list_models",
    "masked_mean",
    "merge_config",
    "model_entry",
    "parameter_count",
    "register_model",
    "ssm_config",
]
