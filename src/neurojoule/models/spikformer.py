"""Spikformer (Zhou et al., ICLR 2023): spiking patch splitting, spiking self-attention
blocks, a linear head on the token-averaged output of each step, averaged over the steps.

Every size is a constructor argument, and heads, MLP ratio, threshold and tau can differ per
block, so that a search can build any sub-architecture.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from neurojoule.layers.attention import SpikformerBlock
from neurojoule.layers.checks import check_images
from neurojoule.layers.patch import SpikingPatchSplitting
from neurojoule.models.registry import merge_config, register_model
from neurojoule.models.vision import (
    CIFAR10,
    FASHION_MNIST,
    IMAGENET,
    DirectEncodedClassifier,
    image_shape,
    per_block,
)


@dataclasses.dataclass
class SpikformerConfig:
    image_size: int = 32
    in_channels: int = 3
    num_classes: int = 10
    embed_dim: int = 384
    depth: int = 4
    heads: int | tuple[int, ...] = 12  # one value, or one per block
    mlp_ratio: float | tuple[float, ...] = 4.0
    v_threshold: float | tuple[float, ...] = 1.0
    tau: float | tuple[float, ...] = 2.0
    attn_threshold: float = 0.5
    steps: int = 4
    pools: tuple[bool, ...] = (False, False, True, True)  # max-pool after SPS conv i

    def __post_init__(self):
        self.pools = tuple(bool(p) for p in self.pools)
        if self.depth < 1 or self.steps < 1:
            raise ValueError(f"expected depth >= 1 and steps >= 1, got {self.depth}, {self.steps}")
        for name in ("heads", "mlp_ratio", "v_threshold", "tau"):
            setattr(self, name, per_block(getattr(self, name), self.depth, name))


class Spikformer(DirectEncodedClassifier):
    """Images [B, C, H, W] -> logits [B, classes]."""

    def __init__(self, config: SpikformerConfig):
        super().__init__()
        self.config = c = config
        # the patch splitting uses the first block's neuron settings
        self.patch = SpikingPatchSplitting(
            c.in_channels, c.embed_dim, c.pools, c.v_threshold[0], c.tau[0]
        )
        self.blocks = nn.ModuleList(
            SpikformerBlock(c.embed_dim, heads, ratio, v_th, tau, c.attn_threshold)
            for heads, ratio, v_th, tau in zip(
                c.heads, c.mlp_ratio, c.v_threshold, c.tau, strict=True
            )
        )
        self.head = nn.Linear(c.embed_dim, c.num_classes)

    def step_logits(self, images: torch.Tensor) -> torch.Tensor:
        """The head's output at each time step, [T, B, classes] (their mean is the logits)."""
        c = self.config
        check_images(images, c.in_channels, c.image_size, "Spikformer")
        x = self.patch(images, c.steps)  # [T, B, D, N]
        for block in self.blocks:
            x = block(x)
        return self.head(x.mean(3))


def _build(config, overrides: dict, **preset) -> Spikformer:
    return Spikformer(merge_config(SpikformerConfig, config, overrides, preset=preset))


_SMALL = dict(FASHION_MNIST, embed_dim=128, depth=2, heads=4, pools=(True, False, True, True))
_LARGE = dict(IMAGENET, embed_dim=768, depth=8, pools=(True, True, True, True))


@register_model("spikformer-8-768", input_shape=image_shape(IMAGENET))
def spikformer_8_768(config: SpikformerConfig | dict | None = None, **overrides) -> Spikformer:
    """Spikformer-8-768 (ImageNet, 66M): 8 blocks, dim 768, 12 heads, T=4"""
    return _build(config, overrides, **_LARGE)


@register_model("spikformer-4-384", input_shape=image_shape(CIFAR10))
def spikformer_4_384(config: SpikformerConfig | dict | None = None, **overrides) -> Spikformer:
    """Spikformer-4-384 (CIFAR-10, 9.3M): 4 blocks, dim 384, 12 heads, T=4"""
    return _build(config, overrides, **CIFAR10)


@register_model("spikformer", input_shape=image_shape(FASHION_MNIST))
def spikformer(config: SpikformerConfig | dict | None = None, **overrides) -> Spikformer:
    """small Spikformer for 28x28 (Fashion-MNIST): 2 blocks, dim 128, 4 heads, 16 tokens, T=4"""
    return _build(config, overrides, **_SMALL)
