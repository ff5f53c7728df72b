"""Blocks of the spiking MLP (Li et al., TNNLS 2024): token mixing along H and along W,
channel mixing, all with batch norm directly after each synapse so inference folds it away.

Tensors are time-first [T, B, C, H, W]. Each block keeps a residual stream of membrane inputs
(real values) and feeds only spikes to its synapses:
    r <- r + TokenBlock(x);   x = LIF(r)
    r <- r + ChannelBlock(x); x = LIF(r)
"""

from __future__ import annotations

import torch
from torch import nn

from neurojoule.layers.time_first import TimeFolded, conv_bn, vision_lif
from neurojoule.util.batchnorm import fold_into_weights


class AxisLinear(nn.Module):
    """A linear map along one spatial axis of [N, C, H, W] (axis 2: H, 3: W), size -> size.

    out[n, c, g] = sum_s weight[c, g, s] x[n, c, s] + bias[c, g] along the axis. Trained, the
    weights are shared by all channels (weight [1, size, size]); folding a following per-channel
    batch norm gives each channel its own scaled copy (weight [C, size, size]).
    """

    def __init__(self, size: int, axis: int, groups: int = 1):
        super().__init__()
        if axis not in (2, 3):
            raise ValueError(f"AxisLinear mixes along H (axis 2) or W (axis 3), got axis {axis}")
        self.size, self.axis = size, axis
        self.weight = nn.Parameter(torch.empty(groups, size, size))
        self.bias = nn.Parameter(torch.empty(groups, size))
        bound = size**-0.5  # nn.Linear's default initialisation
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[self.axis] != self.size:
            raise ValueError(
                f"AxisLinear expects [N, C, H, W] with {self.size} positions along axis "
                f"{self.axis}, got {tuple(x.shape)}"
            )
        moved = x.movedim(self.axis, -1)  # [N, C, other, size]
        mixed = torch.matmul(moved, self.weight.transpose(-1, -2)) + self.bias[:, None, :]
        return mixed.movedim(-1, self.axis)

    def energy_dense_macs(self, x: torch.Tensor, output: torch.Tensor) -> int:
        return output.numel() * self.size

    def fold_batchnorm(self, bn: nn.BatchNorm2d) -> AxisLinear:
        """This layer followed by `bn` (over channels) as one layer with per-channel weights."""
        weight, bias = fold_into_weights(self.weight, self.bias, bn)
        folded = AxisLinear(self.size, self.axis, groups=weight.shape[0]).to(self.weight)
        with torch.no_grad():
            folded.weight.copy_(weight)
            folded.bias.copy_(bias)
        return folded

    def extra_repr(self) -> str:
        return f"size={self.size}, axis={self.axis}, groups={self.weight.shape[0]}"


class TokenBlock(nn.Module):
    """Mix along H and along W (each -> BN -> LIF), concatenate [x, x_h, x_w], fuse 3C -> C
    with a 1x1 conv and BN. Spikes [T, B, C, H, W] in, membrane input of the same shape out."""

    def __init__(self, channels: int, height: int, width: int, **lif):
        super().__init__()
        self.mix_h = TimeFolded(nn.Sequential(AxisLinear(height, 2), nn.BatchNorm2d(channels)))
        self.mix_w = TimeFolded(nn.Sequential(AxisLinear(width, 3), nn.BatchNorm2d(channels)))
        self.lif_h, self.lif_w = vision_lif(**lif), vision_lif(**lif)
        self.fuse = TimeFolded(conv_bn(3 * channels, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_h = self.lif_h(self.mix_h(x))
        x_w = self.lif_w(self.mix_w(x))
        return self.fuse(torch.cat([x, x_h, x_w], dim=2))


class ChannelBlock(nn.Module):
    """Linear C -> ratio C -> BN -> LIF -> Linear -> C -> BN, per position (1x1 convs; no
    biases, the batch norms that follow carry them)."""

    def __init__(self, channels: int, ratio: float = 3.0, **lif):
        super().__init__()
        hidden = round(channels * ratio)
        self.expand = TimeFolded(conv_bn(channels, hidden, 1))
        self.lif = vision_lif(**lif)
        self.project = TimeFolded(conv_bn(hidden, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(self.lif(self.expand(x)))


class MixerBlock(nn.Module):
    """Token then channel mixing on a residual stream of membrane inputs; maps (r, x) with x =
    the spikes of r to the updated (r, x)."""

    def __init__(self, channels: int, height: int, width: int, ratio: float = 3.0, **lif):
        super().__init__()
        self.token = TokenBlock(channels, height, width, **lif)
        self.lif_token = vision_lif(**lif)
        self.channel = ChannelBlock(channels, ratio, **lif)
        self.lif_channel = vision_lif(**lif)

    def forward(self, r: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        r = r + self.token(x)
        x = self.lif_token(r)
        r = r + self.channel(x)
        return r, self.lif_channel(r)
