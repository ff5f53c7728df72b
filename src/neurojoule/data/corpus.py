"""What the language-modelling corpora share: a word vocabulary and contiguous LM windows."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from neurojoule.data.options import check_seq_len
from neurojoule.data.tokens import PAD_ID

PAD_TOKEN = "<pad>"
EOS = "<eos>"
UNK = "<unk>"


class Vocabulary:
    """Token <-> id. Id 0 (PAD_ID) pads; ids 1.. follow `tokens` in order."""

    def __init__(self, tokens: Sequence[str]):
        self.tokens = [PAD_TOKEN, *tokens]
        self.ids = {token: index for index, token in enumerate(self.tokens)}
        if len(self.ids) != len(self.tokens):
            raise ValueError(
                f"expected distinct vocabulary tokens, got {len(self.tokens)} tokens "
                f"of which {len(self.ids)} are distinct"
            )

    @classmethod
    def from_counts(cls, counts: Counter, ensure: Iterable[str] = (UNK,)) -> Vocabulary:
        """Tokens by falling count, ties by token; `ensure` tokens that never occur go last."""
        ordered = sorted(counts, key=lambda token: (-counts[token], token))
        return cls(ordered + [token for token in ensure if token not in counts])

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, tokens: Iterable[str]) -> np.ndarray:
        """int32 ids; a token outside the vocabulary becomes <unk> (an error without one)."""
        unknown = self.ids.get(UNK)
        lookup = self.ids.__getitem__ if unknown is None else self._or_unknown(unknown)
        try:
            return np.fromiter(map(lookup, tokens), dtype=np.int32)
        except KeyError as error:
            raise ValueError(
                f"token {error.args[0]!r} is not in the vocabulary, which has no {UNK} "
                "token to stand in for it"
            ) from None

    def _or_unknown(self, unknown: int):
        ids = self.ids
        return lambda token: ids.get(token, unknown)

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.tokens[int(index)] for index in ids]


@dataclass(frozen=True)
class Corpus:
    """A language-modelling corpus: one id stream per split ("train", "val", "test")."""

    splits: dict[str, np.ndarray]
    vocab_size: int  # ids lie in [0, vocab_size); 0 pads
    vocabulary: Vocabulary | None = None  # None for byte-level ids (byte + 1)


class TokenWindows(Dataset):
    """Contiguous windows of one id stream: (input ids [L], target ids [L]), targets shifted
    by one. Windows do not overlap, so every id after the first is a target exactly once; the
    last window is padded with PAD_ID (targets too, which the loss ignores)."""

    def __init__(self, ids: np.ndarray | torch.Tensor, seq_len: int):
        seq_len = check_seq_len(seq_len, "TokenWindows seq_len")
        if ids.ndim != 1 or len(ids) < 2:
            raise ValueError(
                f"expected a 1-D stream of at least 2 token ids, got shape {tuple(ids.shape)}"
            )
        self.ids = ids
        self.seq_len = seq_len

    def __len__(self) -> int:
        return math.ceil((len(self.ids) - 1) / self.seq_len)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"window {index} out of range for {len(self)} windows")
        start = (index % len(self)) * self.seq_len
        # a copy: the stream may be a read-only memory map of the cache
        chunk = torch.from_numpy(np.array(self.ids[start : start + self.seq_len + 1], np.int64))
        window = torch.full((self.seq_len + 1,), PAD_ID, dtype=torch.long)
        window[: len(chunk)] = chunk
        return window[:-1], window[1:]
