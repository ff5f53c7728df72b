"""scikit-learn's bundled 8x8 handwritten digits (1797 images): real data with no download."""

from __future__ import annotations

import torch
from torch.utils.data import TensorDataset


def load_digits_split(
    test_fraction: float = 0.2, seed: int = 0
) -> tuple[TensorDataset, TensorDataset]:
    """Train and test sets of (pixels in [0, 1] as 64 floats, label); a seeded stratified split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction}")
    digits = load_digits()
    x_train, x_test, y_train, y_test = train_test_split(
        digits.data / 16.0,
        digits.target,
        test_size=test_fraction,
        random_state=seed,
        stratify=digits.target,
    )

    def as_dataset(x, y):
        return TensorDataset(
            torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.long)
        )

    return as_dataset(x_train, y_train), as_dataset(x_test, y_test)
