"""Shared pieces of the image models: their common base, the input sizes of the datasets
their variants are built for, and per-block settings."""

from __future__ import annotations

import torch
from torch import nn


class DirectEncodedClassifier(nn.Module):
    """An image classifier that sees the image at each of `config.steps` time steps (direct
    encoding): its logits are the mean over the steps of `step_logits`, [T, B, classes]."""

    config: object  # a dataclass with `steps`

    @property
    def time_steps(self) -> int:
        """Steps of the direct encoding (read by the energy counter)."""
        return self.config.steps

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.step_logits(images).mean(0)

    def step_logits(self, images: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


IMAGENET = {"image_size": 224, "in_channels": 3, "num_classes": 1000}
FASHION_MNIST = {"image_size": 28, "in_channels": 1, "num_classes": 10}
CIFAR10 = {"image_size": 32, "in_channels": 3, "num_classes": 10}
DIGITS = {"image_size": 8, "in_channels": 1, "num_classes": 10}


def image_shape(preset: dict) -> tuple[str | int, ...]:
    """The registry's input_shape of one batch of a preset's images."""
    side = preset["image_size"]
    return ("batch", preset["in_channels"], side, side)


def per_block(value, depth: int, name: str) -> tuple:
    """A setting given once for all blocks, or once per block, as a tuple of `depth` values."""
    values = tuple(value) if isinstance(value, (list, tuple)) else (value,) * depth
    if len(values) != depth:
        raise ValueError(f"{name}: expected one value or {depth} (one per block), got {value}")
    return values
