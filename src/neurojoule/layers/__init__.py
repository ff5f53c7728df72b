"""Building blocks: state space convolutions, spiking SSM blocks and their backbone, adaptive
input embeddings and adaptive softmax. (`lif_mode`, `set_lif_mode` and `ssm_neurons` are the
neuron package's, offered here too for the code that switches a whole model's LIF mode.)"""

from neurojoule.layers.adaptive import AdaptiveInput, AdaptiveSoftmax
from neurojoule.layers.spiking_ssm import (
    NORMS,
    ChannelLayerNorm,
    ResidualLayer,
    S4DBlock,
    SpikingS4DBlock,
    SSMBackbone,
    channel_norm,
)
from neurojoule.layers.ssm import S4D, S4DKernel, S4DKernelConfig, fft_conv, ssm_parameter_groups
from neurojoule.neuron import lif_mode, set_lif_mode, ssm_neurons

__all__ = [
    "AdaptiveInput",
    "AdaptiveSoftmax",
    "NORMS",
    "S4D",
    "ChannelLayerNorm",
    "ResidualLayer",
    "S4DBlock",
    "S4DKernel",
    "S4DKernelConfig",
    "SSMBackbone",
    "SpikingS4DBlock",
    "channel_norm",
    "fft_conv",
    "lif_mode",
    "set_lif_mode",
    "ssm_neurons",
    "ssm_parameter_groups",
]
