"""Shared pieces of the time-first vision networks (tensors [T, B, ...]): direct encoding,
layers applied with time folded into the batch, conv + batch-norm units and the LIF they use."""

from __future__ import annotations

import torch
from torch import nn

from neurojoule.neuron import LIF

VISION_SURROGATE = "sigmoid(alpha=4)"


class TimeFolded(nn.Module):
    """Applies `module` to [T, B, ...] as one batch of T x B samples, so a batch norm inside
    normalises over time and batch together."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        steps, batch = x.shape[:2]
        return self.module(x.flatten(0, 1)).unflatten(0, (steps, batch))


def vision_lif(v_threshold: float = 1.0, tau: float = 2.0) -> LIF:
    """The LIF of the spiking MLP and Spikformer on [T, B, ...]: input decay with time constant
    tau, u <- u + (x - u) / tau, hard reset to 0 detached from the graph, sigmoid surrogate."""
    return LIF(
        time_dim=0,
        tau=tau,
        v_threshold=v_threshold,
        reset="hard",
        detach_reset=True,
        surrogate=VISION_SURROGATE,
    )


def conv_bn(
    in_channels: int,
    out_channels: int,
    kernel_size: int,
    stride: int = 1,
    padding: int = 0,
    bias: bool = False,
) -> nn.Sequential:
    """Conv2d followed directly by BatchNorm2d (so inference folds the norm into the conv)."""
    conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, bias=bias)
    return nn.Sequential(conv, nn.BatchNorm2d(out_channels))


def token_linear_bn(in_features: int, out_features: int, bias: bool = True) -> nn.Sequential:
    """A linear layer over the channels of [N, C, tokens] (a 1x1 Conv1d) followed directly by
    BatchNorm1d over the channels, i.e. batch norm over tokens."""
    return nn.Sequential(
        nn.Conv1d(in_features, out_features, 1, bias=bias), nn.BatchNorm1d(out_features)
    )


def repeat_steps(x: torch.Tensor, steps: int) -> torch.Tensor:
    """Direct encoding: the same input at each of `steps` time steps, [B, ...] -> [T, B, ...]."""
    if steps < 1:
        raise ValueError(f"expected at least one time step, got {steps}")
    return x.unsqueeze(0).expand(steps, *x.shape)
