"""Building blocks: state space convolutions, spiking SSM blocks and their backbone, adaptive
input embeddings and adaptive softmax."""

from neurojoule.layers.adaptive import AdaptiveInput, AdaptiveSoftmax
from neurojoule.layers.spiking_ssm import (
    NORMS,
    ChannelLayerNorm,
    ResidualLayer,
    S4DBlock,
    SpikingS4DBlock,
    SSMBackbone,
    channel_norm,
    lif_mode,
    set_lif_mode,
    ssm_neurons,
)
from neurojoule.layers.ssm import S4D, S4DKernel, fft_conv, ssm_parameter_groups

__all__ = [
    "AdaptiveInput",
    "AdaptiveSoftmax",
    "NORMS",
    "S4D",
    "ChannelLayerNorm",
    "ResidualLayer",
    "S4DBlock",
    "S4DKernel",
    "SSMBackbone",
    "SpikingS4DBlock",
    "channel_norm",
    "fft_conv",
    "lif_mode",
    "set_lif_mode",
    "ssm_neurons",
    "ssm_parameter_groups",
]
