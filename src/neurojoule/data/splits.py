"""Seeded splits for datasets that publish no validation set."""

from __future__ import annotations

from itertools import pairwise

import torch
from torch.utils.data import Dataset, Subset


def held_out_split(dataset: Dataset, fraction: float, seed: int = 0) -> tuple[Subset, Subset]:
    """(rest, held_out): a seeded random `fraction` of `dataset` set aside, e.g. for validation."""
    parts = fraction_split(dataset, [1.0 - fraction, fraction], seed)
    return parts[0], parts[1]


def fraction_split(dataset: Dataset, fractions: list[float], seed: int = 0) -> list[Subset]:
    """Split `dataset` into seeded random parts whose sizes follow `fractions` (summing to 1)."""
    if any(not 0.0 <= f <= 1.0 for f in fractions) or abs(sum(fractions) - 1.0) > 1e-6:
        raise ValueError(f"fractions must lie in [0, 1] and sum to 1, got {fractions}")
    size = len(dataset)
    order = torch.randperm(size, generator=torch.Generator().manual_seed(seed)).tolist()
    bounds = [round(size * sum(fractions[:i])) for i in range(len(fractions) + 1)]
    return [Subset(dataset, order[start:stop]) for start, stop in pairwise(bounds)]
