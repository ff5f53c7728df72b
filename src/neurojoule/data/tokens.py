"""Token id helpers shared by the text-like tasks: byte tokens, padding, batching."""

from __future__ import annotations

import numpy as np
import torch

PAD_ID = 0
BYTE_VOCAB_SIZE = 257  # id 0 pads; byte b has id b + 1


def byte_ids(data: bytes, length: int | None = None) -> torch.Tensor:
    """Byte-level token ids (byte + 1), truncated and zero-padded to `length` when given."""
    if length is not None:
        data = data[:length]
    ids = torch.from_numpy(np.frombuffer(data, dtype=np.uint8).astype(np.int64) + 1)
    return ids if length is None else pad_to(ids, length)


def pad_to(ids: torch.Tensor, length: int) -> torch.Tensor:
    """Truncate a 1-D id tensor to `length`, or pad it on the right with PAD_ID."""
    if ids.ndim != 1:
        raise ValueError(f"expected a 1-D tensor of token ids, got shape {tuple(ids.shape)}")
    if length < 1:
        raise ValueError(f"length must be at least 1, got {length}")
    if ids.numel() >= length:
        return ids[:length]
    padded = torch.full((length,), PAD_ID, dtype=ids.dtype)
    padded[: ids.numel()] = ids
    return padded


def pad_collate(batch: list[tuple[torch.Tensor, int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """DataLoader collate for variable-length id sequences: pad to the longest in the batch."""
    sequences = [ids for ids, _ in batch]
    longest = max(ids.numel() for ids in sequences)
    inputs = torch.stack([pad_to(ids, longest) for ids in sequences])
    labels = torch.tensor([int(label) for _, label in batch], dtype=torch.long)
    return inputs, labels
