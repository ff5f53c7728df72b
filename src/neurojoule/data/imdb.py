"""IMDB movie reviews as bytes: the Long Range Arena "Text" task.

Official layout (Maas et al. 2011, https://ai.stanford.edu/~amaas/data/sentiment/,
aclImdb_v1.tar.gz): aclImdb/{train,test}/{pos,neg}/<id>_<rating>.txt, 12500 reviews in each
of the four folders. Each review becomes its UTF-8 bytes as token ids (byte + 1, 0 pads),
truncated or padded to `max_length` (LRA: 4096); label 1 for pos, 0 for neg.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import Dataset

from neurojoule.data.cache import cache_dir
from neurojoule.data.options import check_seq_len
from neurojoule.data.tokens import byte_ids

SPLITS = ("train", "test")
LABELS = {"neg": 0, "pos": 1}
SOURCE = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"


def find_imdb(root: str | Path | None = None) -> Path:
    """The aclImdb folder: `root`/aclImdb, or `root` itself."""
    root = Path(root) if root is not None else cache_dir()
    for folder in (root / "aclImdb", root):
        if all((folder / split / label).is_dir() for split in SPLITS for label in LABELS):
            return folder
    raise FileNotFoundError(
        f"IMDB reviews not found under {root}: expected {root / 'aclImdb'}/"
        "{train,test}/{pos,neg}/*.txt (extract " + SOURCE + " there or pass its folder as root)"
    )


def imdb_files(split: str = "train", root: str | Path | None = None) -> list[tuple[Path, int]]:
    """(review file, label) of a split, in a fixed order: neg then pos, files sorted by name."""
    if split not in SPLITS:
        raise ValueError(f"IMDB split must be one of {SPLITS}, got {split!r}")
    folder = find_imdb(root) / split
    files = [
        (path, label)
        for name, label in LABELS.items()
        for path in sorted((folder / name).glob("*.txt"))
        if path.is_file()
    ]
    if not files:
        raise ValueError(f"{folder}: expected *.txt reviews in pos/ and neg/, found none")
    return files


class IMDBDataset(Dataset):
    """(byte token ids LongTensor [max_length], label 0 neg / 1 pos); files read on access."""

    def __init__(
        self, split: str = "train", root: str | Path | None = None, max_length: int = 4096
    ) -> None:
        self.max_length = check_seq_len(max_length, "IMDBDataset max_length")
        self.files = imdb_files(split, root)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        path, label = self.files[index]
        return byte_ids(path.read_bytes(), self.max_length), label
