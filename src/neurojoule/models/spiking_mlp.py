"""The spiking MLP with multiplication-free inference (Li et al., TNNLS 2024, arXiv 2306.12465).

Direct encoding (the image at each of T steps), four stages of token/channel mixing blocks, batch
norm only (each directly after a synapse, or before the pooled head), residual sums taken
before the LIF neurons, so every synapse after the image stem receives spikes.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from neurojoule.layers.mixer import MixerBlock
from neurojoule.layers.patch import ImageStem, PatchMerging, SpikingPatchEncoding
from neurojoule.layers.time_first import TimeFolded, check_images, vision_lif
from neurojoule.models.vision import vision_config


@dataclasses.dataclass
class SpikingMLPConfig:
    image_size: int = 224
    in_channels: int = 3
    num_classes: int = 1000
    dim: int = 96  # channels of stage 0; stage i has dim * 2**i
    depths: tuple[int, ...] = (2, 8, 14, 2)
    mlp_ratio: float = 3.0
    patch_size: int = 4
    spe: bool = True  # spiking patch encoding between stages (else 2x2 conv patch merging)
    steps: int = 4
    v_threshold: float = 1.0
    tau: float = 2.0

    def __post_init__(self):
        self.depths = tuple(self.depths)
        if self.image_size % self.patch_size:
            raise ValueError(
                f"image_size {self.image_size} is not divisible by patch_size {self.patch_size}"
            )
        if not self.depths or min(self.depths) < 1 or self.steps < 1:
            raise ValueError(
                f"expected depths >= 1 and steps >= 1, got {self.depths}, {self.steps}"
            )

    def sides(self) -> list[int]:
        """Spatial side of each stage."""
        sides = [self.image_size // self.patch_size]
        for _ in self.depths[1:]:
            previous = sides[-1]
            sides.append((previous + 1) // 2 if self.spe else previous // 2)
        if min(sides) < 1:
            raise ValueError(f"image_size {self.image_size} is too small for {len(sides)} stages")
        return sides


class MixerStage(nn.Module):
    """An embedding (the membrane input r of the previous stage's spikes, or of the stem's
    output), x = LIF(r), then mixing blocks; spikes out."""

    def __init__(self, embed: nn.Module, channels: int, side: int, depth: int, ratio: float,
                 **lif):  # fmt: skip
        super().__init__()
        self.embed = embed
        self.lif = vision_lif(**lif)
        self.blocks = nn.ModuleList(
            MixerBlock(channels, side, side, ratio, **lif) for _ in range(depth)
        )

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        r = self.embed(inputs)
        x = self.lif(r)
        for block in self.blocks:
            r, x = block(r, x)
        return x


class SpikingMLP(nn.Module):
    """Images [B, C, H, W] -> logits [B, classes], the head averaged over the T steps."""

    def __init__(self, config: SpikingMLPConfig):
        super().__init__()
        self.config = c = config
        lif = {"v_threshold": c.v_threshold, "tau": c.tau}
        widths = [c.dim * 2**i for i in range(len(c.depths))]
        self.stem = ImageStem(c.in_channels, widths[0], c.patch_size, c.patch_size)
        embed = SpikingPatchEncoding if c.spe else PatchMerging
        self.stages = nn.ModuleList()
        for i, (width, side, depth) in enumerate(zip(widths, c.sides(), c.depths, strict=True)):
            stage_embed = nn.Identity() if i == 0 else embed(widths[i - 1], width, **lif)
            self.stages.append(MixerStage(stage_embed, width, side, depth, c.mlp_ratio, **lif))
        # The published head, BN -> mean over positions -> Linear, with the Linear applied at
        # each position before the mean (equal by linearity), so that it reads spikes.
        self.head = TimeFolded(
            nn.Sequential(
                nn.BatchNorm2d(widths[-1]),
                nn.Conv2d(widths[-1], c.num_classes, 1),
                nn.AdaptiveAvgPool2d(1),
                nn.Flatten(1),
            )
        )

    @property
    def time_steps(self) -> int:
        """Steps of the direct encoding (read by the energy counter)."""
        return self.config.steps

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.step_logits(images).mean(0)

    def step_logits(self, images: torch.Tensor) -> torch.Tensor:
        """The head's output at each time step, [T, B, classes] (their mean is the logits)."""
        c = self.config
        check_images(images, c.in_channels, c.image_size, "SpikingMLP")
        x = self.stem(images, c.steps)
        for stage in self.stages:
            x = stage(x)
        return self.head(x)


def spiking_mlp(config: SpikingMLPConfig | dict | None = None, **overrides) -> SpikingMLP:
    return SpikingMLP(vision_config(SpikingMLPConfig, config, overrides))
