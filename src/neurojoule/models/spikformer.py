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
from neurojoule.layers.patch import SpikingPatchSplitting
from neurojoule.layers.time_first import check_images
from neurojoule.models.vision import per_block, vision_config


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


class Spikformer(nn.Module):
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

    @property
    def time_steps(self) -> int:
        """Steps of the direct encoding (read by the energy counter)."""
        return self.config.steps

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.step_logits(images).mean(0)

    def step_logits(self, images: torch.Tensor) -> torch.Tensor:
        """The head's output at each time step, [T, B, classes] (their mean is the logits)."""
        c = self.config
        check_images(images, c.in_channels, c.image_size, "Spikformer")
        x = self.patch(images, c.steps)  # [T, B, D, N]
        for block in self.blocks:
            x = block(x)
        return self.head(x.mean(3))


def spikformer(config: SpikformerConfig | dict | None = None, **overrides) -> Spikformer:
    return Spikformer(vision_config(SpikformerConfig, config, overrides))
