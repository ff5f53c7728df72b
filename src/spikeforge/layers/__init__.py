"""Building blocks: state space convolutions (and, later, spiking blocks, attention, norms)."""

from spikeforge.layers.ssm import S4D, S4DKernel, fft_conv, ssm_parameter_groups

__all__ = ["S4D", "S4DKernel", "fft_conv", "ssm_parameter_groups"]
