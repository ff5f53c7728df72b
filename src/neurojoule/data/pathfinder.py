"""Pathfinder and Path-X (Long Range Arena): are the two dots joined by one dashed path?

Official layout (the LRA release, lra_release.gz from
https://github.com/google-research/long-range-arena): <root>/pathfinder<R>/<difficulty>/
with metadata/<n>.npy and imgs/<n>/sample_<k>.png, where R is 32, 64, 128 (Path-X) or 256
and the difficulty is curv_baseline (easy), curv_contour_length_9 (intermediate) or
curv_contour_length_14 (hard, the one LRA reports). Despite their suffix the metadata files
are text: one line per image, space-separated fields; field 0 is the image folder relative
to the difficulty folder, field 1 the file name, field 3 the label (1: connected).

Each image is read with pillow as grayscale and flattened row by row into an [R*R, 1]
sequence of floats in [0, 1] (1024 steps for Pathfinder-32, 16384 for Path-X).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from neurojoule.data.cache import cache_dir
from neurojoule.data.options import check_mean_std, integer, one_line

DIFFICULTIES = ("curv_baseline", "curv_contour_length_9", "curv_contour_length_14")
SOURCE = "lra_release.gz from https://github.com/google-research/long-range-arena"
_LABEL_FIELD = 3


def find_pathfinder(
    root: str | Path | None = None, resolution: int = 32, difficulty: str = DIFFICULTIES[-1]
) -> Path:
    """The difficulty folder, found under `root` or `root`/lra_release."""
    if difficulty not in DIFFICULTIES:
        raise ValueError(f"difficulty must be one of {DIFFICULTIES}, got {difficulty!r}")
    root = Path(root) if root is not None else cache_dir()
    relative = Path(f"pathfinder{resolution}") / difficulty
    candidates = (root / relative, root / "lra_release" / relative)
    for folder in candidates:
        if (folder / "metadata").is_dir():
            return folder
    raise FileNotFoundError(
        f"Pathfinder files not found at {' or '.join(map(str, candidates))}: expected "
        f"{relative}/metadata/<n>.npy (text, one line per image) and {relative}/imgs/<n>/*.png "
        f"from the LRA release ({SOURCE}); pass the folder holding pathfinder{resolution}/ "
        "as root"
    )


def read_pathfinder_metadata(folder: str | Path) -> list[tuple[Path, int]]:
    """(image path, label) of every line of every metadata file, files in numeric order."""
    folder = Path(folder)
    files = sorted((folder / "metadata").glob("*.npy"), key=_numeric_then_name)
    if not files:
        raise FileNotFoundError(f"no metadata/*.npy files in {folder}")
    return [example for path in files for example in _read_metadata_file(folder, path)]


def _numeric_then_name(path: Path) -> tuple[int, str]:
    return (int(path.stem), "") if path.stem.isdigit() else (-1, path.stem)


def _read_metadata_file(folder: Path, path: Path) -> list[tuple[Path, int]]:
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        number = raw.count(b"\n", 0, error.start) + 1
        raise ValueError(
            f"{path}:{number}: expected text lines (the release's metadata), got the bytes "
            f"{raw[error.start : error.end]!r}"
        ) from None
    examples = []
    for number, line in enumerate(text.split("\n"), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) <= _LABEL_FIELD or fields[_LABEL_FIELD] not in ("0", "1"):
            raise ValueError(
                f"{path}:{number}: expected space-separated fields 'image folder, file name, "
                f"..., label 0 or 1 (field 3)', got {line[:80]!r}"
            )
        examples.append((folder / fields[0] / fields[1], int(fields[_LABEL_FIELD])))
    return examples


class PathfinderDataset(Dataset):
    """All images of one resolution and difficulty: (float sequence [R*R, 1], label 0/1).

    `normalize` = (mean, std) applied after scaling to [0, 1] (S4 uses (0.5, 0.5)).
    LRA publishes no split; see `neurojoule.data.splits.fraction_split`.
    """

    def __init__(
        self,
        root: str | Path | None = None,
        resolution: int = 32,
        difficulty: str = DIFFICULTIES[-1],
        normalize: tuple[float, float] | None = None,
    ) -> None:
        self.resolution = integer(1)("PathfinderDataset resolution", resolution)
        self.normalize = check_mean_std(normalize, "PathfinderDataset normalize")
        self.folder = find_pathfinder(root, resolution, difficulty)
        self.examples = read_pathfinder_metadata(self.folder)
        if not self.examples:
            raise ValueError(f"{self.folder / 'metadata'}: expected lines naming images, got none")

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        path, label = self.examples[index]
        pixels = torch.from_numpy(self._read_image(path)).float().div_(255.0)
        if self.normalize is not None:
            mean, std = self.normalize
            pixels = (pixels - mean) / std
        return pixels.reshape(-1, 1), label

    def _read_image(self, path: Path) -> np.ndarray:
        expected = (self.resolution, self.resolution)
        if not path.is_file():
            raise ValueError(f"{path}: expected the image that the metadata names, no such file")
        try:
            with Image.open(path) as image:
                if image.size != expected:  # checked before decoding: a huge claimed size is cheap
                    raise _WrongSize(f"{path}: expected a {expected} image, got {image.size}")
                pixels = np.array(image.convert("L"))
        except _WrongSize as error:
            raise ValueError(str(error)) from None
        except Exception as error:  # pillow raises many kinds on broken files, not only OSError
            raise ValueError(
                f"{path}: expected a PNG image, could not read it: "
                f"{type(error).__name__}: {one_line(error)}"
            ) from error
        if pixels.shape != expected:
            raise ValueError(f"{path}: expected a {expected} image, got {pixels.shape}")
        return pixels


class _WrongSize(Exception):
    pass
