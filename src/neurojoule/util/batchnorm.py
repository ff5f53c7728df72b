"""Batch norm folding: an inference-mode batch norm merged into the layer before it.

In eval mode a batch norm is a fixed affine map per channel, bn(x) = scale * x + shift, with
scale = gamma / sqrt(running_var + eps) and shift = beta - running_mean * scale (gamma = 1,
beta = 0 without affine parameters). Every fold in the package (energy.fold_batchnorm, the
token-mixing layer of the spiking MLP, the SDN) computes its weights here.
"""

from __future__ import annotations

import torch
from torch import nn


def batchnorm_affine(bn: nn.modules.batchnorm._BatchNorm) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, shift) in float64 such that bn(x) = scale * x + shift per channel in eval mode."""
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError(
            f"expected a batch norm with running statistics, got {type(bn).__name__} "
            "with track_running_stats=False"
        )
    with torch.no_grad():
        scale = (bn.running_var.double() + bn.eps).rsqrt()
        shift = -bn.running_mean.double() * scale
        if bn.affine:
            gamma, beta = bn.weight.double(), bn.bias.double()
            scale, shift = scale * gamma, shift * gamma + beta
    return scale, shift


def fold_into_weights(
    weight: torch.Tensor, bias: torch.Tensor | None, bn: nn.modules.batchnorm._BatchNorm
) -> tuple[torch.Tensor, torch.Tensor]:
    """The weight and bias, in float64, of a layer followed by `bn`: W' = scale W, b' = scale b
    + shift, per output channel along the first axis of both (a missing bias counts as 0).
    A first axis of size 1 (one set of weights shared by all channels) broadcasts to every
    channel."""
    scale, shift = batchnorm_affine(bn)
    with torch.no_grad():
        new_weight = weight.double() * scale.reshape(-1, *[1] * (weight.dim() - 1))
        if bias is None:
            return new_weight, shift
        per_channel = (-1, *[1] * (bias.dim() - 1))
        new_bias = bias.double() * scale.reshape(per_channel) + shift.reshape(per_channel)
    return new_weight, new_bias
