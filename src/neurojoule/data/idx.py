"""IDX files (the MNIST family's format), gzipped or not, read with their header checked."""

from __future__ import annotations

import gzip
import math
import zlib
from pathlib import Path

import numpy as np

from neurojoule.data.options import one_line

_UNSIGNED_BYTE = 0x08
_GZIP_MAGIC = b"\x1f\x8b"


def read_idx(path: str | Path, shape: tuple[int | None, ...]) -> np.ndarray:
    """The uint8 array of an IDX file whose dimensions must match `shape` (None: any size).

    A wrong magic number, dimension count, dimension or byte count, or a broken gzip stream,
    raises ValueError naming the file and what was expected.
    """
    path = Path(path)
    raw = _read_maybe_gzipped(path)
    expected_magic = bytes([0, 0, _UNSIGNED_BYTE, len(shape)])
    if raw[:4] != expected_magic:
        raise ValueError(
            f"{path}: expected the IDX magic number 0x{expected_magic.hex()} (unsigned bytes, "
            f"{len(shape)} dimensions), got 0x{raw[:4].hex()}"
        )
    header_size = 4 + 4 * len(shape)
    if len(raw) < header_size:
        raise ValueError(f"{path}: truncated IDX header; expected {header_size} bytes")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=len(shape), offset=4))
    for dim, wanted in zip(dims, shape, strict=True):
        if wanted is not None and dim != wanted:
            raise ValueError(f"{path}: expected dimensions {shape}, got {dims}")
    expected_size = header_size + math.prod(dims)  # exact: numpy's int64 product can wrap
    if len(raw) != expected_size:
        raise ValueError(
            f"{path}: expected {expected_size} bytes for dimensions {dims}, got {len(raw)} "
            "(truncated or corrupt file)"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header_size).reshape(dims).copy()


def _read_maybe_gzipped(path: Path) -> bytes:
    raw = path.read_bytes()
    if not raw.startswith(_GZIP_MAGIC):
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as error:
        raise ValueError(
            f"{path}: expected a complete gzip-compressed IDX file, the stream is broken "
            f"({one_line(error)})"
        ) from error
