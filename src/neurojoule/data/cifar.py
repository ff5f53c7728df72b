"""CIFAR-10 and CIFAR-100 from their python pickles: images, and the LRA "Image" sequences.

Official layout (https://www.cs.toronto.edu/~kriz/cifar.html, the "python version" archives):
cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta} and
cifar-100-python/{train, test, meta}. Each batch is a pickled dict with 'data', uint8
[N, 3072] (1024 red, then 1024 green, then 1024 blue values, rows top to bottom), and
'labels' (CIFAR-10) or 'fine_labels' (CIFAR-100; also 'coarse_labels').

The pickles are read with an unpickler that builds only numpy arrays and plain containers,
so a doctored file cannot run code.
"""

from __future__ import annotations

import dataclasses
import io
import numbers
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from neurojoule.data.cache import cache_dir
from neurojoule.data.options import check_mean_std, clipped, one_line

SIDE = 32
PIXELS = SIDE * SIDE
GRAY_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R 601-2 luma, PIL's "L" weights (kept unrounded)
# S4's normalisation of the grayscale sequence (on the 0-255 scale: mean 122.6, std 61.0)
GRAY_MEAN_STD = (122.6 / 255.0, 61.0 / 255.0)
# per-channel (R, G, B) mean and std of the training pixels scaled to [0, 1], as commonly quoted
CIFAR10_MEAN_STD = ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))
CIFAR100_MEAN_STD = ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762))
MODES = ("image", "gray-sequence", "rgb-sequence")


@dataclasses.dataclass(frozen=True)
class _Layout:
    folder: str
    splits: dict[str, tuple[str, ...]]
    meta: str
    label_key: str
    names_key: str
    num_classes: int
    url: str


LAYOUTS = {
    "cifar10": _Layout(
        folder="cifar-10-batches-py",
        splits={"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)},
        meta="batches.meta",
        label_key="labels",
        names_key="label_names",
        num_classes=10,
        url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    ),
    "cifar100": _Layout(
        folder="cifar-100-python",
        splits={"train": ("train",), "test": ("test",)},
        meta="meta",
        label_key="fine_labels",
        names_key="fine_label_names",
        num_classes=100,
        url="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
    ),
}

_SAFE_GLOBALS = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy._core.numeric", "_frombuffer"),
    ("_codecs", "encode"),
}


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        current = module.replace("numpy.core.", "numpy._core.")  # numpy 1 wrote numpy.core
        if (current, name) not in _SAFE_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a data pickle")
        try:
            return super().find_class(current, name)
        except ModuleNotFoundError:  # numpy 1 reading its own pickles
            return super().find_class(module, name)


def read_pickle_dict(path: str | Path) -> dict[str, Any]:
    """A CIFAR-style pickled dict, keys as str (the original Python 2 files store bytes)."""
    path = Path(path)
    raw = path.read_bytes()  # from memory, a length field claiming terabytes reads short
    try:
        content = _ArrayUnpickler(io.BytesIO(raw), encoding="latin1").load()
    except Exception as error:  # only the allowed constructors run, so any failure is the file's
        raise ValueError(
            f"{path}: expected a CIFAR python pickle, could not read it "
            f"({type(error).__name__}: {one_line(error)})"
        ) from error
    if not isinstance(content, dict):
        raise ValueError(f"{path}: expected a pickled dict, got {type(content).__name__}")
    return {_as_str(key): value for key, value in content.items()}


def _as_str(key: Any) -> Any:
    return key.decode("latin1") if isinstance(key, bytes) else key


def read_cifar_batch(
    path: str | Path, label_key: str = "labels", num_classes: int = 10
) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 [N, 3, 32, 32], labels int64 [N]) of one CIFAR pickle, checked."""
    batch = read_pickle_dict(path)
    if "data" not in batch or label_key not in batch:
        keys = clipped(sorted(map(repr, batch)), 120)
        raise ValueError(f"{path}: expected keys 'data' and {label_key!r}, got {keys}")
    data = batch["data"]
    if not isinstance(data, np.ndarray):
        raise ValueError(
            f"{path}: expected 'data' a numpy array uint8 [N, {3 * PIXELS}], "
            f"got {type(data).__name__}"
        )
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * PIXELS:
        raise ValueError(
            f"{path}: expected 'data' uint8 [N, {3 * PIXELS}], got {data.dtype} {list(data.shape)}"
        )
    if len(data) == 0:
        raise ValueError(f"{path}: expected at least one image in 'data', got none")
    labels = _labels(path, batch[label_key], label_key, len(data), num_classes)
    return data.reshape(-1, 3, SIDE, SIDE), labels


def _labels(path: Path, value: Any, key: str, count: int, num_classes: int) -> np.ndarray:
    """`count` integer labels in 0..num_classes-1 as int64, from a list, tuple or array."""
    if isinstance(value, np.ndarray) and value.ndim == 1 and value.dtype.kind in "iu":
        values = value.tolist()
    elif isinstance(value, (list, tuple)):
        values = list(value)
    else:
        raise ValueError(
            f"{path}: expected {key!r} a list of {count} integers, got {type(value).__name__}"
        )
    if len(values) != count:
        raise ValueError(f"{path}: expected {count} {key}, one per image, got {len(values)}")
    wrong = [
        v
        for v in values
        if not isinstance(v, numbers.Integral) or isinstance(v, bool) or not 0 <= v < num_classes
    ]
    if wrong:
        raise ValueError(
            f"{path}: expected {key} to be integers 0-{num_classes - 1}, got {clipped(wrong[0])}"
            f" ({len(wrong)} such)"
        )
    return np.array(values, dtype=np.int64)


def find_cifar(root: str | Path | None = None, dataset: str = "cifar10") -> Path:
    """The folder holding the pickles: `root`/<official folder name>, or `root` itself."""
    layout = _layout(dataset)
    root = Path(root) if root is not None else cache_dir()
    needed = [name for names in layout.splits.values() for name in names]
    for folder in (root / layout.folder, root):
        if all((folder / name).is_file() for name in needed):
            return folder
    raise FileNotFoundError(
        f"{dataset} pickles not found under {root}: expected {root / layout.folder}/ holding "
        f"{', '.join(needed)} and {layout.meta} (the python version, {layout.url}; extract it "
        f"there or pass its parent folder as root)"
    )


def _layout(dataset: str) -> _Layout:
    if dataset not in LAYOUTS:
        raise ValueError(f"dataset must be one of {list(LAYOUTS)}, got {dataset!r}")
    return LAYOUTS[dataset]


def load_cifar(
    split: str = "train", root: str | Path | None = None, dataset: str = "cifar10"
) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 [N, 3, 32, 32], labels int64 [N]) of a CIFAR-10/100 split."""
    layout = _layout(dataset)
    if split not in layout.splits:
        raise ValueError(f"CIFAR split must be 'train' or 'test', got {split!r}")
    folder = find_cifar(root, dataset)
    batches = [
        read_cifar_batch(folder / name, layout.label_key, layout.num_classes)
        for name in layout.splits[split]
    ]
    return np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches])


def cifar_class_names(root: str | Path | None = None, dataset: str = "cifar10") -> list[str]:
    """Class names from batches.meta (CIFAR-10) or meta (CIFAR-100, the fine labels)."""
    layout = _layout(dataset)
    path = find_cifar(root, dataset) / layout.meta
    if not path.is_file():
        raise FileNotFoundError(f"expected {path} ({layout.url})")
    meta = read_pickle_dict(path)
    names = meta.get(layout.names_key)
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, (str, bytes)) for n in names):
        raise ValueError(
            f"{path}: expected the key {layout.names_key!r} holding a list of names, "
            f"got {clipped(names)}"
        )
    return [n.decode("latin1") if isinstance(n, bytes) else n for n in names]


class CIFARDataset(Dataset):
    """(input, label) with pixels scaled to [0, 1], then optionally normalised.

    mode 'image': [3, 32, 32]; 'gray-sequence' (the LRA Image task): [1024, 1], luma
    0.299 R + 0.587 G + 0.114 B pixel by pixel, row by row; 'rgb-sequence': [1024, 3].
    `normalize` = (mean, std), each a float or one value per channel of the mode.
    """

    def __init__(
        self,
        split: str = "train",
        root: str | Path | None = None,
        dataset: str = "cifar10",
        mode: str = "image",
        normalize: tuple[Any, Any] | None = None,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        channels = 1 if mode == "gray-sequence" else 3
        normalize = check_mean_std(normalize, f"CIFARDataset ({mode}) normalize", channels)
        images, labels = load_cifar(split, root, dataset)
        self.mode = mode
        self.num_classes = _layout(dataset).num_classes
        self._images = torch.from_numpy(images)
        self.labels = labels
        self._mean_std = None
        if normalize is not None:
            mean, std = (torch.as_tensor(v, dtype=torch.float32) for v in normalize)
            self._mean_std = mean.reshape(-1, 1, 1), std.reshape(-1, 1, 1)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = self._images[index].float() / 255.0
        if self.mode == "gray-sequence":
            image = torch.tensordot(torch.tensor(GRAY_WEIGHTS), image, dims=1).unsqueeze(0)
        if self._mean_std is not None:
            mean, std = self._mean_std
            image = (image - mean) / std
        if self.mode == "image":
            return image, int(self.labels[index])
        return image.reshape(image.shape[0], PIXELS).t().contiguous(), int(self.labels[index])
