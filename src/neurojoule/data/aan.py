"""ACL Anthology Network citation pairs: the Long Range Arena "Retrieval" task.

Official files: the LRA release (lra_release.gz from
https://github.com/google-research/long-range-arena) has
tsv_data/new_aan_pairs.{train,eval,test}.tsv; each line, without a header, holds label, id1,
id2, text1, text2 separated by tabs. Both documents become byte token ids (byte + 1, 0 pads),
each truncated or padded to `max_length` (LRA: 4000).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from neurojoule.data.cache import cache_dir
from neurojoule.data.options import check_seq_len
from neurojoule.data.tokens import byte_ids

FILE_NAMES = {split: f"new_aan_pairs.{split}.tsv" for split in ("train", "eval", "test")}
SOURCE = "lra_release.gz from https://github.com/google-research/long-range-arena"
_FIELDS = 5


def find_aan(split: str = "train", root: str | Path | None = None) -> Path:
    """The TSV file of a split ('train', 'eval' or 'test') in `root` or `root`/tsv_data."""
    if split not in FILE_NAMES:
        raise ValueError(f"AAN split must be one of {list(FILE_NAMES)}, got {split!r}")
    root = Path(root) if root is not None else cache_dir()
    folders = (root, root / "tsv_data", root / "lra_release" / "tsv_data")
    for folder in folders:
        if (folder / FILE_NAMES[split]).is_file():
            return folder / FILE_NAMES[split]
    raise FileNotFoundError(
        f"AAN file {FILE_NAMES[split]} not found in {', '.join(map(str, folders))}: expected the "
        f"LRA release's tsv_data/new_aan_pairs.{{train,eval,test}}.tsv ({SOURCE})"
    )


class AANDataset(Dataset):
    """(token ids LongTensor [2, max_length]: row 0 the first document, row 1 the second,
    label 1 if one cites the other else 0).

    The file is indexed once (line offsets and labels) and lines are read on access, so the
    large training file never sits in memory.
    """

    def __init__(
        self, split: str = "train", root: str | Path | None = None, max_length: int = 4000
    ) -> None:
        self.max_length = check_seq_len(max_length, "AANDataset max_length")
        self.path = find_aan(split, root)
        self._offsets, self.labels = _index(self.path)
        if len(self.labels) == 0:
            raise ValueError(f"{self.path}: expected tab-separated document pairs, got none")

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        with open(self.path, "rb") as stream:
            stream.seek(self._offsets[index])
            line = stream.readline()
        fields = line.rstrip(b"\r\n").split(b"\t")
        pair = torch.stack([byte_ids(text, self.max_length) for text in fields[3:5]])
        return pair, int(self.labels[index])


def _index(path: Path) -> tuple[np.ndarray, np.ndarray]:
    offsets, labels = [], []
    position = 0
    with open(path, "rb") as stream:
        for number, line in enumerate(stream, start=1):
            if line.strip():
                offsets.append(position)
                labels.append(_label(line, path, number))
            position += len(line)
    return np.array(offsets, dtype=np.int64), np.array(labels, dtype=np.int64)


def _label(line: bytes, path: Path, number: int) -> int:
    fields = line.rstrip(b"\r\n").split(b"\t")
    try:
        label = float(fields[0])
    except ValueError:
        label = None
    if len(fields) != _FIELDS or label not in (0.0, 1.0):
        raise ValueError(
            f"{path}:{number}: expected {_FIELDS} tab-separated fields "
            f"(label 0 or 1, id1, id2, text1, text2), got {len(fields)} fields starting "
            f"{line[:60]!r}"
        )
    return int(label)
