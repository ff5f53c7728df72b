"""Patch embeddings of the vision SNNs, time-first [T, B, C, H, W].

- `ImageStem`: direct encoding (the image at each of T steps), then the first layer, a conv +
  BN on the real-valued image. It runs at every step like the other layers, so that the
  energy count of every synaptic layer covers T steps.
- `SpikingPatchEncoding` (spiking MLP, stages 1-3): three parallel 3x3 stride-2 conv + BN
  branches cross-connected through LIF neurons; returns the membrane input (pre-spike).
- `PatchMerging`: the plain alternative, a 2x2 stride-2 conv + BN.
- `SpikingPatchSplitting` (Spikformer): four conv + BN + LIF stages with optional max-pooling,
  then the relative position embedding x + LIF(BN(conv3x3(x))).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from neurojoule.layers.time_first import TimeFolded, conv_bn, repeat_steps, vision_lif


class ImageStem(nn.Module):
    """Images [B, C, H, W] repeated to T steps, then conv(kernel, stride) + BN:
    [T, B, C', H', W']."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int,
                 padding: int = 0):  # fmt: skip
        super().__init__()
        self.conv_bn = TimeFolded(conv_bn(in_channels, out_channels, kernel_size, stride, padding))

    def forward(self, images: torch.Tensor, steps: int) -> torch.Tensor:
        return self.conv_bn(repeat_steps(images, steps))


class SpikingPatchEncoding(nn.Module):
    """Spikes [T, B, C_in, H, W] -> membrane input [T, B, C, H/2, W/2] (C divisible by 3):
    n1, n2, n3 = three conv3x3/2 + BN branches; n2 += convBN(LIF(n1)); n3 += n1 + convBN(LIF(n2));
    output concat(n1, n2, n3)."""

    def __init__(self, in_channels: int, out_channels: int, **lif):
        super().__init__()
        if out_channels % 3:
            raise ValueError(
                f"the spiking patch encoding splits its output in three, got {out_channels} "
                "channels (expected a multiple of 3)"
            )
        part = out_channels // 3
        self.branches = nn.ModuleList(
            TimeFolded(conv_bn(in_channels, part, 3, stride=2, padding=1)) for _ in range(3)
        )
        self.lif_1, self.lif_2 = vision_lif(**lif), vision_lif(**lif)
        self.cross_12 = TimeFolded(conv_bn(part, part, 3, padding=1))
        self.cross_23 = TimeFolded(conv_bn(part, part, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n1, n2, n3 = (branch(x) for branch in self.branches)
        n2 = n2 + self.cross_12(self.lif_1(n1))
        n3 = n3 + n1 + self.cross_23(self.lif_2(n2))
        return torch.cat([n1, n2, n3], dim=2)


class PatchMerging(nn.Module):
    """Spikes [T, B, C_in, H, W] -> membrane input [T, B, C, H/2, W/2]: conv2x2/2 + BN."""

    def __init__(self, in_channels: int, out_channels: int, **lif):
        super().__init__()
        self.merge = TimeFolded(conv_bn(in_channels, out_channels, 2, stride=2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.merge(x)


class SpikingPatchSplitting(nn.Module):
    """Images [B, C, H, W] -> tokens [T, B, D, N]: conv3x3 + BN + LIF to D/8, D/4, D/2, D
    channels, each optionally followed by MaxPool(3, stride 2, padding 1) (`pools`), then the
    relative position embedding."""

    def __init__(
        self,
        in_channels: int,
        embed_dim: int,
        pools: Sequence[bool] = (False, False, True, True),
        v_threshold: float = 1.0,
        tau: float = 2.0,
    ):
        super().__init__()
        if embed_dim % 8 or len(pools) != 4:
            raise ValueError(
                f"spiking patch splitting needs embed_dim divisible by 8 and 4 pool flags, "
                f"got {embed_dim} and {list(pools)}"
            )
        widths = [embed_dim // 8, embed_dim // 4, embed_dim // 2, embed_dim]
        lif = {"v_threshold": v_threshold, "tau": tau}
        self.stem = ImageStem(in_channels, widths[0], 3, 1, padding=1)
        self.convs = nn.ModuleList(
            TimeFolded(conv_bn(a, b, 3, padding=1))
            for a, b in zip(widths, widths[1:], strict=False)
        )
        self.lifs = nn.ModuleList(vision_lif(**lif) for _ in widths)
        self.pools = nn.ModuleList(
            TimeFolded(nn.MaxPool2d(3, 2, 1)) if pool else nn.Identity() for pool in pools
        )
        self.position = TimeFolded(conv_bn(embed_dim, embed_dim, 3, padding=1))
        self.position_lif = vision_lif(**lif)

    def forward(self, images: torch.Tensor, steps: int) -> torch.Tensor:
        x = self.pools[0](self.lifs[0](self.stem(images, steps)))
        for conv, lif, pool in zip(self.convs, self.lifs[1:], self.pools[1:], strict=True):
            x = pool(lif(conv(x)))
        x = x + self.position_lif(self.position(x))
        return x.flatten(3)
