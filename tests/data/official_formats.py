"""Writers of small datasets in their official formats, shared by the data tests."""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np
from PIL import Image


def write_idx(path: Path, array: np.ndarray, compress: bool = False) -> None:
    """An IDX file as the MNIST page describes it: magic 0 0 8 ndim, big-endian dims, bytes."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape
    )
    content = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(content) if compress else content)


def write_fashion_torchvision(root: Path, n_train: int = 30, n_test: int = 10) -> Path:
    """<root>/FashionMNIST/raw/{train,t10k}-*-ubyte, uncompressed, as torchvision leaves them."""
    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for prefix, size in (("train", n_train), ("t10k", n_test)):
        write_idx(raw / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (size, 28, 28)))
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", np.arange(size) % 10)
    return root


def write_pickle(path: Path, content: dict) -> None:
    # bytes keys: what the Python 2 originals give when loaded with encoding="bytes"
    with open(path, "wb") as stream:
        pickle.dump({key.encode(): value for key, value in content.items()}, stream, protocol=2)


def cifar10_batches(n_per_batch: int = 2, n_test: int = 3) -> dict[str, dict]:
    rng = np.random.default_rng(2)
    batches = {}
    for index, name in enumerate([f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]):
        size = n_test if name == "test_batch" else n_per_batch
        batches[name] = {
            "batch_label": f"batch {index}",
            "data": rng.integers(0, 256, (size, 3072), dtype=np.uint8),
            "labels": [int(v) for v in rng.integers(0, 10, size)],
            "filenames": [f"img_{index}_{i}.png" for i in range(size)],
        }
    return batches


def write_cifar10(root: Path) -> dict[str, dict]:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    batches = cifar10_batches()
    for name, batch in batches.items():
        write_pickle(folder / name, batch)
    names = ["airplane", "automobile", "bird", "cat", "deer"]
    names += ["dog", "frog", "horse", "ship", "truck"]
    write_pickle(folder / "batches.meta", {"label_names": names, "num_vis": 3072})
    return batches


def write_cifar100(root: Path) -> dict[str, dict]:
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(3)
    splits = {}
    for name, size in (("train", 4), ("test", 2)):
        fine = [99, 0, 57, 12][:size]
        splits[name] = {
            "data": rng.integers(0, 256, (size, 3072), dtype=np.uint8),
            "fine_labels": fine,
            "coarse_labels": [label // 5 for label in fine],
        }
        write_pickle(folder / name, splits[name])
    meta = {"fine_label_names": [f"fine{i}" for i in range(100)]}
    meta["coarse_label_names"] = [f"coarse{i}" for i in range(20)]
    write_pickle(folder / "meta", meta)
    return splits


IMDB_REVIEWS = {
    ("train", "pos"): ["A great film.", "Loved it <br /> café"],
    ("train", "neg"): ["Dull.", "Bad acting", "Worst"],
    ("test", "pos"): ["Fine"],
    ("test", "neg"): ["Meh"],
}


def write_imdb(root: Path) -> Path:
    for (split, label), texts in IMDB_REVIEWS.items():
        folder = root / "aclImdb" / split / label
        folder.mkdir(parents=True)
        for index, text in enumerate(texts):
            (folder / f"{index}_{7 if label == 'pos' else 2}.txt").write_text(text, "utf-8")
    (root / "aclImdb" / "imdb.vocab").write_text("the\nfilm\n")
    return root


AAN_ROWS = {
    "train": [
        ("1", "P01-1001", "P02-2002", "first document text", "second one"),
        ("0", "P03-3003", "P04-4004", "x" * 50, "short"),
        ("1", "P05-5005", "P06-6006", "another", "pair here"),
    ],
    "eval": [("0", "E1", "E2", "eval left", "eval right")],
    "test": [("1", "T1", "T2", "test left", "test right"), ("0", "T3", "T4", "a", "b")],
}


def write_aan(root: Path) -> Path:
    folder = root / "tsv_data"
    folder.mkdir(parents=True)
    for split, rows in AAN_ROWS.items():
        lines = "".join("\t".join(row) + "\n" for row in rows)
        (folder / f"new_aan_pairs.{split}.tsv").write_text(lines, "utf-8")
    return root


def write_pathfinder(
    root: Path, resolution: int = 32, difficulty: str = "curv_contour_length_14", n: int = 10
) -> list[tuple[np.ndarray, int]]:
    """n images over two metadata files; returns (pixels, label) in metadata order."""
    folder = root / f"pathfinder{resolution}" / difficulty
    (folder / "metadata").mkdir(parents=True)
    rng = np.random.default_rng(4)
    examples = []
    for file_index in range(2):
        image_folder = folder / "imgs" / str(file_index)
        image_folder.mkdir(parents=True)
        lines = []
        for k in range(n // 2):
            pixels = rng.integers(0, 256, (resolution, resolution), dtype=np.uint8)
            label = int(rng.integers(0, 2))
            Image.fromarray(pixels, mode="L").save(image_folder / f"sample_{k}.png")
            lines.append(f"imgs/{file_index} sample_{k}.png {k} {label} 1.4 2\n")
            examples.append((pixels, label))
        (folder / "metadata" / f"{file_index}.npy").write_text("".join(lines))
    return examples
