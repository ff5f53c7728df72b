"""The spiking MLP with multiplication-free inference (Li et al., TNNLS 2024, arXiv 2306.12465).

Direct encoding (the image at each of T steps), four stages of token/channel mixing blocks, batch
norm only (each directly after a synapse, or before the pooled head), residual sums taken
before the LIF neurons, so every synapse after the image stem receives spikes.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from neurojoule.layers.checks import check_images
from neurojoule.layers.mixer import MixerBlock
from neurojoule.layers.patch import ImageStem, PatchMerging, SpikingPatchEncoding
from neurojoule.layers.time_first import TimeFolded, vision_lif
from neurojoule.models.registry import merge_config, register_model
from neurojoule.models.vision import (
    CIFAR10,
    FASHION_MNIST,
    IMAGENET,
    DirectEncodedClassifier,
    image_shape,
)


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


class SpikingMLP(DirectEncodedClassifier):
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

    def step_logits(self, images: torch.Tensor) -> torch.Tensor:
        """The head's output at each time step, [T, B, classes] (their mean is the logits)."""
        c = self.config
        check_images(images, c.in_channels, c.image_size, "SpikingMLP")
        x = self.stem(images, c.steps)
        for stage in self.stages:
            x = stage(x)
        return self.head(x)


def _build(config, overrides: dict, **preset) -> SpikingMLP:
    return SpikingMLP(merge_config(SpikingMLPConfig, config, overrides, preset=preset))


Config = SpikingMLPConfig | dict | None


@register_model("spiking-mlp-spe-t", input_shape=image_shape(IMAGENET))
def spiking_mlp_spe_t(config: Config = None, **overrides) -> SpikingMLP:
    """Spiking MLP-SPE-T (ImageNet, 25M): dim 78, depths 2-8-14-2, spiking patch encoding, T=4"""
    return _build(config, overrides, **IMAGENET, dim=78)


@register_model("spiking-mlp-spe-s", input_shape=image_shape(IMAGENET))
def spiking_mlp_spe_s(config: Config = None, **overrides) -> SpikingMLP:
    """Spiking MLP-SPE-S (ImageNet, 38M): dim 96, depths 2-8-14-2, spiking patch encoding, T=4"""
    return _build(config, overrides, **IMAGENET)


@register_model("spiking-mlp-s", input_shape=image_shape(IMAGENET))
def spiking_mlp_s(config: Config = None, **overrides) -> SpikingMLP:
    """Spiking MLP-S (ImageNet, published 34M, 34.5M here): MLP-SPE-S with 2x2 conv patch merging"""
    return _build(config, overrides, **IMAGENET, spe=False)


@register_model("spiking-mlp-spe-b", input_shape=image_shape(IMAGENET))
def spiking_mlp_spe_b(config: Config = None, **overrides) -> SpikingMLP:
    """Spiking MLP-SPE-B (ImageNet, published 66M; dim 126 here gives 65M), T=6"""
    return _build(config, overrides, **IMAGENET, dim=126, steps=6)


@register_model("spiking-mlp", input_shape=image_shape(FASHION_MNIST))
def spiking_mlp(config: Config = None, **overrides) -> SpikingMLP:
    """small spiking MLP for 28x28 images (Fashion-MNIST): patch 2, dim 24, depths 1-1-2-1, T=4"""
    return _build(config, overrides, **FASHION_MNIST, dim=24, depths=(1, 1, 2, 1), patch_size=2)


@register_model("spiking-mlp-cifar", input_shape=image_shape(CIFAR10))
def spiking_mlp_cifar(config: Config = None, **overrides) -> SpikingMLP:
    """small spiking MLP for 32x32 images (CIFAR): patch 2, dim 48, depths 1-2-2-1, T=4"""
    return _build(config, overrides, **CIFAR10, dim=48, depths=(1, 2, 2, 1), patch_size=2)
