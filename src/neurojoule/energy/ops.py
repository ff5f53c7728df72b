"""Operation counts of one call of a synaptic layer: dense MACs and synaptic operations (SOPs).

Dense MACs are what an ANN of the same shape performs. SOPs count the synaptic events that a
spiking implementation performs: one per (non-zero input element, output it reaches), so an
input element that is zero costs nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


class SynapticMatmul(nn.Module):
    """torch.matmul(a, b) for matmuls that are synapses (e.g. spiking attention Q K^T).

    Energy accounting treats `a` as the layer's input and `b` as its weights: every element of
    `a` reaches b.shape[-1] outputs (one, when b is a vector). With broadcasting, an element of
    `a` also reaches every copy of it that the broadcast makes, so its fan-out is
    b.shape[-1] x (output batch size / a's batch size). Put the operand whose spikes should be
    checked and counted first (transpose both sides if needed: (B^T A^T)^T = A B).
    """

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.matmul(a, b)


@dataclass(frozen=True)
class OpCount:
    dense_macs: int
    sops: int


SYNAPTIC_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d, SynapticMatmul)
# Any other module may declare its own multiply-adds by defining this method
# (input, output) -> int; it is then counted as a synaptic layer (e.g. an SSM convolution).
DECLARED_MACS = "energy_dense_macs"


def declares_macs(module: nn.Module) -> bool:
    return callable(getattr(module, DECLARED_MACS, None))


def count_ops(module: nn.Module, x: torch.Tensor, output: torch.Tensor, nonzero: int) -> OpCount:
    """Dense MACs and SOPs of `module` mapping input `x` (with `nonzero` non-zeros) to output."""
    if isinstance(module, nn.Linear):
        return OpCount(x.numel() * module.out_features, nonzero * module.out_features)
    if isinstance(module, (nn.Conv1d, nn.Conv2d)):
        return _conv_ops(module, x, output)
    if isinstance(module, SynapticMatmul):
        return _matmul_ops(x, output, nonzero)
    if declares_macs(module):
        dense_macs = int(getattr(module, DECLARED_MACS)(x, output))
        return OpCount(dense_macs, nonzero * dense_macs // max(x.numel(), 1))
    raise ValueError(
        f"expected a synaptic layer {[t.__name__ for t in SYNAPTIC_TYPES]}, "
        f"got {type(module).__name__}"
    )


def _matmul_ops(a: torch.Tensor, output: torch.Tensor, nonzero: int) -> OpCount:
    if a.numel() == 0:
        return OpCount(0, 0)
    dense_macs = output.numel() * a.shape[-1]
    # a's batch size divides the output's (broadcasting), so the fan-out is an integer.
    fan_out = dense_macs // a.numel()
    return OpCount(dense_macs, nonzero * fan_out)


def _conv_ops(conv: nn.Conv1d | nn.Conv2d, x: torch.Tensor, output: torch.Tensor) -> OpCount:
    taps_per_output = conv.in_channels // conv.groups * math.prod(conv.kernel_size)
    dense_macs = output.numel() * taps_per_output
    return OpCount(dense_macs, conv_sops(conv, x))


def conv_sops(conv: nn.Conv1d | nn.Conv2d, x: torch.Tensor) -> int:
    """Exact (input spike, output) events of a convolution, borders, stride, dilation included.

    The number of (output, kernel tap) pairs that read an input position depends only on the
    position, and each event feeds out_channels/groups output channels whatever the group.
    So the non-zero indicator is summed over samples and channels into one count map, which is
    convolved with an all-ones kernel of the layer's geometry: each output then holds the
    events it receives, and their sum times out_channels/groups is the SOP count.
    """
    spatial = len(conv.kernel_size)
    if x.numel() == 0:
        return 0
    # float64: counts stay exact integers (float32 convs may run in TF32 on GPUs).
    counts = x.ne(0).reshape(-1, *x.shape[-spatial:]).sum(0, dtype=torch.float64)
    counts = counts[None, None]
    padding = conv.padding
    if conv.padding_mode != "zeros":
        counts = F.pad(counts, conv._reversed_padding_repeated_twice, mode=conv.padding_mode)
        padding = 0
    ones = counts.new_ones((1, 1, *conv.kernel_size))
    convolve = F.conv1d if spatial == 1 else F.conv2d
    events = convolve(counts, ones, stride=conv.stride, padding=padding, dilation=conv.dilation)
    return round(events.sum().item()) * (conv.out_channels // conv.groups)
