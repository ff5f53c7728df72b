"""scikit-learn's bundled 8x8 handwritten digits (1797 images): real data with no download."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import TensorDataset

from neurojoule.data.options import check_mean_std, fraction

SIDE = 8


def load_digits_split(
    test_fraction: float = 0.2, seed: int = 0
) -> tuple[TensorDataset, TensorDataset]:
    """Train and test sets of (pixels in [0, 1] as 64 floats, label); a seeded stratified split."""
    test_fraction = fraction()("digits test_fraction", test_fraction)
    pixels, labels = _digits()
    train, test = _stratified_split(pixels, labels, test_fraction, seed)
    return _as_dataset(*train), _as_dataset(*test)


def load_digits_images(
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    seed: int = 0,
    normalize: tuple[float, float] | None = None,
) -> tuple[TensorDataset, TensorDataset, TensorDataset]:
    """Train, validation and test sets of (image [1, 8, 8] with pixels in [0, 1], then
    optionally normalised by `normalize` = (mean, std), label), split at random by `seed`, each
    class in the same proportion in every split; the fractions are of all 1797 images."""
    val_fraction = fraction()("digits val_fraction", val_fraction)
    test_fraction = fraction()("digits test_fraction", test_fraction)
    normalize = check_mean_std(normalize, "digits normalize")
    if val_fraction + test_fraction >= 1.0:
        raise ValueError(
            f"val_fraction + test_fraction must be below 1, got {val_fraction} + {test_fraction}"
        )
    pixels, labels = _digits()
    if normalize is not None:
        mean, std = normalize
        pixels = (pixels - mean) / std
    rest, test = _stratified_split(pixels, labels, test_fraction, seed)
    train, val = _stratified_split(*rest, val_fraction / (1.0 - test_fraction), seed)
    return _as_images(*train), _as_images(*val), _as_images(*test)


def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    return digits.data / 16.0, digits.target


def _stratified_split(pixels: np.ndarray, labels: np.ndarray, fraction: float, seed: int):
    """((pixels, labels) kept, (pixels, labels) set aside): a seeded stratified `fraction`."""
    from sklearn.model_selection import train_test_split

    kept_x, aside_x, kept_y, aside_y = train_test_split(
        pixels, labels, test_size=fraction, random_state=seed, stratify=labels
    )
    return (kept_x, kept_y), (aside_x, aside_y)


def _as_images(pixels: np.ndarray, labels: np.ndarray) -> TensorDataset:
    return _as_dataset(pixels.reshape(-1, 1, SIDE, SIDE), labels)


def _as_dataset(pixels: np.ndarray, labels: np.ndarray) -> TensorDataset:
    return TensorDataset(
        torch.tensor(pixels, dtype=torch.float32), torch.tensor(labels, dtype=torch.long)
    )
