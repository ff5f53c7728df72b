"""Tasks by name, as (train, val, test, info): long-sequence and image classification with
`classification_task(name)`, language modelling (windows of (input ids, next ids)) with
`lm_task`."""

from __future__ import annotations

import dataclasses
import inspect
import os
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
from torch.utils.data import Dataset

from neurojoule.data import listops as listops_module
from neurojoule.data.aan import AANDataset
from neurojoule.data.augment import Augmented, ImageAugmentation
from neurojoule.data.cifar import CIFARDataset
from neurojoule.data.corpus import Corpus, TokenWindows
from neurojoule.data.digits import load_digits_images
from neurojoule.data.fashion_mnist import FashionMNISTDataset
from neurojoule.data.imdb import IMDBDataset
from neurojoule.data.kjv import LEVELS as KJV_LEVELS
from neurojoule.data.kjv import SPLITS as KJV_SPLITS
from neurojoule.data.kjv import kjv_corpus
from neurojoule.data.listops_reader import listops_datasets
from neurojoule.data.options import (
    MAX_SEQ_LEN,
    SEED_MAX,
    Option,
    boolean,
    choice,
    fraction,
    integer,
    mean_std,
    shown,
)
from neurojoule.data.pathfinder import DIFFICULTIES, PathfinderDataset
from neurojoule.data.splits import fraction_split, held_out_split
from neurojoule.data.tokens import BYTE_VOCAB_SIZE
from neurojoule.data.wikitext import wikitext103


@dataclasses.dataclass(frozen=True)
class TaskInfo:
    """What a model needs to know about a task's inputs and outputs."""

    name: str
    num_classes: int
    seq_len: int
    vocab_size: int | None = None  # token tasks: ids in [0, vocab_size), 0 pads
    in_channels: int | None = None  # real-valued tasks: features per sequence step
    paired: bool = False  # inputs are [2, seq_len] document pairs (AAN)
    image_size: int | None = None  # image tasks: inputs are [in_channels, side, side]


Splits = tuple[Dataset, Dataset, Dataset, TaskInfo]


def _listops(root: str | Path | None, seq_len: int | None = None, **spec_fields: int) -> Splits:
    """Generated to the LRA specification (ListOpsSpec fields as options), or the release
    files when root is given; sequences padded to seq_len (default: the window's max_length)."""
    spec = listops_module.ListOpsSpec(**spec_fields)
    seq_len = seq_len or spec.max_length
    if root is None and seq_len < spec.max_length:
        raise ValueError(
            f"listops seq_len {seq_len} < max_length {spec.max_length}: generated expressions "
            "would be cut and no longer match their labels; raise seq_len or lower max_length"
        )
    train, val, test = listops_datasets(spec, root, max_length=seq_len)
    info = TaskInfo(
        "listops", listops_module.NUM_CLASSES, seq_len, vocab_size=listops_module.VOCAB_SIZE
    )
    return train, val, test, info


def _fashion_mnist(
    root: str | Path | None,
    mode: str,
    normalize: tuple[float, float] | None,
    permutation_seed: int,
    val_fraction: float,
    seed: int,
) -> tuple[Dataset, Dataset, Dataset]:
    def split(name: str) -> FashionMNISTDataset:
        return FashionMNISTDataset(name, root, mode, normalize, permutation_seed)

    train, val = held_out_split(split("train"), val_fraction, seed)
    return train, val, split("test")


def _fashion_mnist_seq(
    root: str | Path | None,
    normalize: tuple[float, float] | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
) -> Splits:
    """Fashion-MNIST pixel by pixel, 784 steps of 1 value; normalize e.g. FASHION_MNIST_MEAN_STD."""
    splits = _fashion_mnist(root, "sequence", normalize, 0, val_fraction, seed)
    return *splits, TaskInfo("fashion-mnist-seq", 10, 784, in_channels=1)


def _fashion_mnist_perm(
    root: str | Path | None,
    permutation_seed: int = 0,
    normalize: tuple[float, float] | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
) -> Splits:
    """Fashion-MNIST in the fixed random pixel order of permutation_seed."""
    splits = _fashion_mnist(root, "permuted", normalize, permutation_seed, val_fraction, seed)
    return *splits, TaskInfo("fashion-mnist-perm", 10, 784, in_channels=1)


def _cifar_gray_seq(
    root: str | Path | None,
    normalize: tuple[float, float] | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
) -> Splits:
    """CIFAR-10 grayscale, 1024 steps of 1 value (LRA Image); normalize e.g. GRAY_MEAN_STD."""
    train = CIFARDataset("train", root, "cifar10", "gray-sequence", normalize)
    train, val = held_out_split(train, val_fraction, seed)
    test = CIFARDataset("test", root, "cifar10", "gray-sequence", normalize)
    return train, val, test, TaskInfo("cifar-gray-seq", 10, 1024, in_channels=1)


def _imdb(
    root: str | Path | None, seq_len: int = 4096, val_fraction: float = 0.1, seed: int = 0
) -> Splits:
    """IMDB reviews as bytes (LRA Text)."""
    train, val = held_out_split(IMDBDataset("train", root, seq_len), val_fraction, seed)
    test = IMDBDataset("test", root, seq_len)
    return train, val, test, TaskInfo("imdb", 2, seq_len, vocab_size=BYTE_VOCAB_SIZE)


def _aan(root: str | Path | None, seq_len: int = 4000) -> Splits:
    """AAN document pairs as bytes (LRA Retrieval), the release's train/eval/test files."""
    train, val, test = (AANDataset(split, root, seq_len) for split in ("train", "eval", "test"))
    info = TaskInfo("aan", 2, seq_len, vocab_size=BYTE_VOCAB_SIZE, paired=True)
    return train, val, test, info


def _pathfinder(
    root: str | Path | None,
    resolution: int = 32,
    difficulty: str = DIFFICULTIES[-1],
    normalize: tuple[float, float] | None = None,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 0,
) -> Splits:
    """Pathfinder (resolution 128: Path-X); a seeded split, since LRA publishes none."""
    if val_fraction + test_fraction >= 1.0:
        raise ValueError(
            "pathfinder val_fraction + test_fraction must be below 1 to leave training images, "
            f"got {val_fraction} + {test_fraction}"
        )
    everything = PathfinderDataset(root, resolution, difficulty, normalize)
    fractions = [1.0 - val_fraction - test_fraction, val_fraction, test_fraction]
    train, val, test = fraction_split(everything, fractions, seed)
    info = TaskInfo("pathfinder", 2, resolution * resolution, in_channels=1)
    return train, val, test, info


def _augmented(
    train: Dataset,
    augment: bool,
    crop_padding: int,
    flip: bool,
    normalize: tuple | None,
    seed: int,
) -> Dataset:
    """The training split, randomly cropped (and flipped) if `augment`. The padding is black,
    as if padded before normalising (torchvision's RandomCrop on the raw image)."""
    augmentation = ImageAugmentation(crop_padding, flip, _black(normalize))  # checks options
    return Augmented(train, augmentation, seed) if augment else train


def _black(normalize: tuple | None) -> float | tuple[float, ...]:
    """The value a 0 pixel takes once normalised, per channel where the mean is."""
    if normalize is None:
        return 0.0
    mean, std = (torch.as_tensor(v, dtype=torch.float32) for v in normalize)
    return tuple((-mean / std).reshape(-1).tolist())


def _fashion_mnist_image(
    root: str | Path | None,
    augment: bool = False,
    crop_padding: int = 2,
    flip: bool = False,
    normalize: tuple[float, float] | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
) -> Splits:
    """Fashion-MNIST images [1, 28, 28] (spiking MLP, Spikformer); normalize e.g.
    FASHION_MNIST_MEAN_STD. augment: a random crop after padding by crop_padding, and a
    random horizontal flip if flip, on the training split only."""
    train, val, test = _fashion_mnist(root, "image", normalize, 0, val_fraction, seed)
    train = _augmented(train, augment, crop_padding, flip, normalize, seed)
    info = TaskInfo("fashion-mnist", 10, 28 * 28, in_channels=1, image_size=28)
    return train, val, test, info


def _cifar_images(
    root: str | Path | None,
    dataset: str,
    augment: bool,
    crop_padding: int,
    flip: bool,
    normalize: tuple | None,
    val_fraction: float,
    seed: int,
) -> Splits:
    full_train = CIFARDataset("train", root, dataset, "image", normalize)
    train, val = held_out_split(full_train, val_fraction, seed)
    train = _augmented(train, augment, crop_padding, flip, normalize, seed)
    test = CIFARDataset("test", root, dataset, "image", normalize)
    info = TaskInfo(dataset, full_train.num_classes, 32 * 32, in_channels=3, image_size=32)
    return train, val, test, info


def _cifar_task(dataset: str) -> Callable[..., Splits]:
    """The image task of CIFAR-10 or CIFAR-100 (fine labels): images [3, 32, 32]; normalize =
    (mean, std) per channel, e.g. CIFAR10_MEAN_STD / CIFAR100_MEAN_STD; augment: random crop
    after padding by crop_padding (and flip if flip), training split only."""

    def task(
        root: str | Path | None,
        augment: bool = False,
        crop_padding: int = 4,
        flip: bool = True,
        normalize: tuple | None = None,
        val_fraction: float = 0.1,
        seed: int = 0,
    ) -> Splits:
        return _cifar_images(
            root, dataset, augment, crop_padding, flip, normalize, val_fraction, seed
        )

    task.__doc__ = _cifar_task.__doc__
    return task


def _digits(
    root: str | Path | None,
    augment: bool = False,
    crop_padding: int = 1,
    flip: bool = False,
    normalize: tuple[float, float] | None = None,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> Splits:
    """scikit-learn's 8x8 digits as images [1, 8, 8] (root unused: the package ships them);
    a seeded stratified train/val/test split, the fractions of all 1797 images."""
    train, val, test = load_digits_images(val_fraction, test_fraction, seed, normalize)
    train = _augmented(train, augment, crop_padding, flip, normalize, seed)
    return train, val, test, TaskInfo("digits", 10, 8 * 8, in_channels=1, image_size=8)


TASKS: dict[str, Callable[..., Splits]] = {
    "listops": _listops,
    "fashion-mnist-seq": _fashion_mnist_seq,
    "fashion-mnist-perm": _fashion_mnist_perm,
    "cifar-gray-seq": _cifar_gray_seq,
    "imdb": _imdb,
    "aan": _aan,
    "pathfinder": _pathfinder,
    # image classification: inputs [in_channels, image_size, image_size]
    "fashion-mnist": _fashion_mnist_image,
    "cifar10": _cifar_task("cifar10"),
    "cifar100": _cifar_task("cifar100"),
    "digits": _digits,
}


def classification_task(name: str, root: str | Path | None = None, **options) -> Splits:
    """(train, val, test, info) of a long-sequence or image classification task by name (see
    TASKS); image tasks set info.image_size.

    `root` is the folder holding the task's published files (None: the task's default place,
    the cache folder for most); `options` are the task's keyword arguments, checked as
    `check_task_options` does. The validation split is the published one where there is one,
    else a seeded `val_fraction` of train. A split that ends up empty is a ValueError.
    """
    if not isinstance(name, str) or name not in TASKS:
        raise ValueError(f"unknown sequence task {shown(name)}; expected one of {list(TASKS)}")
    options = check_task_options(name, options)
    return _nonempty(name, TASKS[name](_root(root), **options), options)


def check_task_options(name: str, options: object) -> dict:
    """`options` of the task `name` (classification or language modelling) checked: a mapping
    of known option names to values of the right type and range (YAML configs and --set give
    them), returned with values normalised (e.g. normalize as tuples). Anything else is a
    one-line ValueError naming the option, the expected type and what came."""
    builders = {**TASKS, **LM_TASKS}
    if not isinstance(name, str) or name not in builders:
        raise ValueError(f"unknown task {shown(name)}; expected one of {list(builders)}")
    if options is None:
        options = {}
    if not isinstance(options, Mapping):
        raise ValueError(
            f"task {name!r} options must be a mapping of option names to values, "
            f"got {shown(options)}"
        )
    allowed = _option_names(name)
    unknown = [key for key in options if not isinstance(key, str) or key not in allowed]
    if unknown:
        listed = sorted(map(str, unknown))
        raise ValueError(f"task {name!r} has no options {listed}; expected {allowed}")
    kinds = {**_OPTION_KINDS, **_TASK_OPTION_KINDS.get(name, {})}
    return {key: kinds[key](f"task {name!r} option {key}", value) for key, value in options.items()}


def _root(root: object) -> str | Path | None:
    if root is not None and not isinstance(root, (str, os.PathLike)):
        raise ValueError(f"a task's root must be a folder path or null, got {shown(root)}")
    return root


def _nonempty(name: str, splits: Splits, options: dict) -> Splits:
    for split, dataset in zip(("train", "val", "test"), splits[:3], strict=True):
        if len(dataset) == 0:
            raise ValueError(
                f"task {name!r}: the {split} split is empty (options {shown(options, 120)}); "
                "expected at least one example in each split"
            )
    return splits


def _option_names(name: str) -> list[str]:
    if name == "listops":
        fields = [field.name for field in dataclasses.fields(listops_module.ListOpsSpec)]
        return ["seq_len", *fields]
    return _parameters(TASKS[name] if name in TASKS else LM_TASKS[name])


def _parameters(build: Callable) -> list[str]:
    return [p for p in inspect.signature(build).parameters if p != "root"]


def _split_size() -> Option:
    size = integer(1)
    return Option(f"{size.expected} (0 leaves the split empty)", size.convert)


# what each option takes, by name (the same name means the same thing in every task) ...
_OPTION_KINDS: dict[str, Option] = {
    "seq_len": integer(1, MAX_SEQ_LEN),
    "val_fraction": fraction(),
    "test_fraction": fraction(),
    "seed": integer(0, SEED_MAX),
    "permutation_seed": integer(0, SEED_MAX),
    "normalize": mean_std(),
    "augment": boolean(),
    "flip": boolean(),
    "lowercase": boolean(),
    "difficulty": choice(DIFFICULTIES),
    "resolution": choice((32, 64, 128, 256)),
    "level": choice(KJV_LEVELS),
    "split": choice(KJV_SPLITS),
    "n_train": _split_size(),
    "n_val": _split_size(),
    "n_test": _split_size(),
    "min_length": integer(0),
    "max_length": integer(2),
    "max_depth": integer(1),
    "max_args": integer(2),
}
# ... and where a task differs
_TASK_OPTION_KINDS: dict[str, dict[str, Option]] = {
    "listops": {"seq_len": integer(1, MAX_SEQ_LEN, none=True)},
    "fashion-mnist": {"crop_padding": integer(0, 28)},
    "cifar10": {"crop_padding": integer(0, 32), "normalize": mean_std(3)},
    "cifar100": {"crop_padding": integer(0, 32), "normalize": mean_std(3)},
    "digits": {"crop_padding": integer(0, 8)},
}


def _lm_splits(name: str, corpus: Corpus, seq_len: int) -> Splits:
    for split in ("train", "val", "test"):
        if len(corpus.splits[split]) < 2:
            raise ValueError(
                f"task {name!r}: the {split} split holds {len(corpus.splits[split])} token ids; "
                "expected at least 2 (an input and its target)"
            )
    windows = [TokenWindows(corpus.splits[split], seq_len) for split in ("train", "val", "test")]
    info = TaskInfo(name, corpus.vocab_size, seq_len, vocab_size=corpus.vocab_size)
    return *windows, info


def _wikitext_103(root: str | Path | None, seq_len: int = 8192) -> Splits:
    """WikiText-103 words from the raw release files (vocabulary of the training split)."""
    return _lm_splits("wikitext-103", wikitext103(root), seq_len)


def _kjv(
    root: str | Path | None,
    seq_len: int = 256,
    level: str = "word",
    lowercase: bool = True,
    split: str = "books",
    val_fraction: float = 0.05,
    test_fraction: float = 0.05,
    seed: int = 0,
) -> Splits:
    """The King James Bible from Debian's bible-kjv (root unused: the `bible` program reads
    its own files); words or bytes, split by books or by a seeded verse draw."""
    corpus = kjv_corpus(level, lowercase, split, val_fraction, test_fraction, seed)
    return _lm_splits("kjv", corpus, seq_len)


# language modelling: each item is (input ids [seq_len], target ids [seq_len]), the targets
# shifted by one; info.vocab_size (= info.num_classes) counts the padding id 0
LM_TASKS: dict[str, Callable[..., Splits]] = {"wikitext-103": _wikitext_103, "kjv": _kjv}


def lm_task(name: str, root: str | Path | None = None, **options) -> Splits:
    """(train, val, test, info) of a language-modelling task by name (see LM_TASKS)."""
    if not isinstance(name, str) or name not in LM_TASKS:
        raise ValueError(
            f"unknown language-modelling task {shown(name)}; expected one of {list(LM_TASKS)}"
        )
    return LM_TASKS[name](_root(root), **check_task_options(name, options))


def is_lm_task(name: str) -> bool:
    return isinstance(name, str) and name in LM_TASKS
