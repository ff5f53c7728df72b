"""Fashion-MNIST from its IDX files: as images, as pixel-by-pixel sequences, or permuted.

Where the files come from without internet: Debian's `dataset-fashion-mnist` package installs
them as /usr/share/datasets/fashion-mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz.
A torchvision-style folder (<root>/FashionMNIST/raw/...) works too.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from neurojoule.data.cache import cache_dir
from neurojoule.data.idx import read_idx
from neurojoule.data.options import check_mean_std

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_MEAN_STD = (0.2860, 0.3530)  # of the 60000 training pixels scaled to [0, 1]
CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
SIDE = 28
MODES = ("image", "sequence", "permuted")
_FILE_PREFIX = {"train": "train", "test": "t10k"}


def find_fashion_mnist(split: str = "train", root: str | Path | None = None) -> tuple[Path, Path]:
    """(images file, labels file) of `split` ('train' or 'test'), gzipped or not.

    Looks in `root` and `root`/FashionMNIST/raw; without `root`, in the Debian folder and the
    cache folder.
    """
    prefix = _split_prefix(split)
    bases = [Path(root)] if root is not None else [DEBIAN_DIR, cache_dir()]
    folders = [folder for base in bases for folder in (base, base / "FashionMNIST" / "raw")]
    for folder in folders:
        images = _existing(folder, f"{prefix}-images-idx3-ubyte")
        labels = _existing(folder, f"{prefix}-labels-idx1-ubyte")
        if images and labels:
            return images, labels
    raise FileNotFoundError(
        f"Fashion-MNIST {split} files not found in {', '.join(map(str, folders))}: expected "
        f"{prefix}-images-idx3-ubyte[.gz] and {prefix}-labels-idx1-ubyte[.gz]. Install Debian's "
        "`dataset-fashion-mnist` package (apt-get install dataset-fashion-mnist) or put the "
        "files from https://github.com/zalandoresearch/fashion-mnist in one of these folders"
    )


def _split_prefix(split: str) -> str:
    if split not in _FILE_PREFIX:
        raise ValueError(f"Fashion-MNIST split must be 'train' or 'test', got {split!r}")
    return _FILE_PREFIX[split]


def _existing(folder: Path, name: str) -> Path | None:
    for candidate in (folder / f"{name}.gz", folder / name):
        if candidate.is_file():
            return candidate
    return None


def load_fashion_mnist(
    split: str = "train", root: str | Path | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 [N, 28, 28], labels int64 [N]) of `split`, headers and sizes checked."""
    images_path, labels_path = find_fashion_mnist(split, root)
    images = read_idx(images_path, (None, SIDE, SIDE))
    if len(images) == 0:
        raise ValueError(f"{images_path}: expected at least one image, got none")
    labels = read_idx(labels_path, (None,)).astype(np.int64)
    if len(images) != len(labels):
        raise ValueError(
            f"{labels_path}: expected {len(images)} labels, one per image of {images_path}, "
            f"got {len(labels)}"
        )
    if labels.size and labels.max() >= len(CLASSES):
        raise ValueError(f"{labels_path}: expected labels 0-9, got a {labels.max()}")
    return images, labels


def pixel_permutation(seed: int, size: int = SIDE * SIDE) -> torch.Tensor:
    """The fixed pixel order of the permuted task for `seed`."""
    return torch.randperm(size, generator=torch.Generator().manual_seed(seed))


class FashionMNISTDataset(Dataset):
    """(input, label) with pixels scaled to [0, 1] and then optionally normalised.

    mode 'image': [1, 28, 28]; 'sequence': [784, 1], row by row; 'permuted': [784, 1] in the
    fixed order `pixel_permutation(permutation_seed)`. `normalize` = (mean, std), e.g.
    FASHION_MNIST_MEAN_STD.
    """

    def __init__(
        self,
        split: str = "train",
        root: str | Path | None = None,
        mode: str = "image",
        normalize: tuple[float, float] | None = None,
        permutation_seed: int = 0,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.normalize = check_mean_std(normalize, "FashionMNISTDataset normalize")
        images, labels = load_fashion_mnist(split, root)
        self.mode = mode
        self._pixels = torch.from_numpy(images.reshape(len(images), -1))
        self.labels = labels
        self.permutation = pixel_permutation(permutation_seed) if mode == "permuted" else None

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        pixels = self._pixels[index].float() / 255.0
        if self.normalize is not None:
            mean, std = self.normalize
            pixels = (pixels - mean) / std
        if self.mode == "image":
            return pixels.view(1, SIDE, SIDE), int(self.labels[index])
        if self.permutation is not None:
            pixels = pixels[self.permutation]
        return pixels.view(-1, 1), int(self.labels[index])
