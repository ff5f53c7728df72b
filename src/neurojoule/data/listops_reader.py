"""ListOps TSV files (the LRA release's or generated ones) read into token ids, and a dataset.

The format: UTF-8 text, rows ended by LF or CR LF (the last row's end may be missing); the
first row is the header ``Source\\tTarget``; every other row is a source, a tab and a label
0-9. A source is tokens separated by whitespace: ``( )``, which are dropped, and the ListOps
tokens. What remains must be one complete expression (a digit, or an operator, its one or
more arguments and ``]``), and the parentheses must balance. Anything else is a ValueError
naming the file and the line.

A release-sized file (100M tokens) goes through a vectorised path in chunks; the line parser
is the reference, and any file the vectorised path cannot vouch for goes to it, so the two
give the same ids or the line parser names the offending line. The vectorised path reads a
213 MB file in 1.4 s on one core (the 640 MB training file of the default set: about 4 s);
the line parser takes about ten times as long.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from neurojoule.data.listops import (
    DIGITS,
    END,
    FILE_NAMES,
    HEADER,
    NUM_CLASSES,
    OPERATORS,
    PARENTHESES,
    SPLITS,
    VOCAB,
    ListOpsSpec,
    listops_files,
)
from neurojoule.data.options import check_seq_len, clipped
from neurojoule.data.tokens import pad_to

_LABEL_TEXTS = frozenset(str(label) for label in range(NUM_CLASSES))
_CHUNK_BYTES = 1 << 23  # the vectorised path's working set stays a few times this


def read_listops_tsv(path: str | Path) -> list[tuple[list[str], int]]:
    """(tokens without parentheses, label) pairs of a ListOps TSV file, format checked."""
    path = Path(path)
    return _parse_rows(path, _body(path, path.read_bytes()))


def encode_listops_file(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(token ids uint8, all rows end to end; row lengths int64; labels int64) of a file."""
    path = Path(path)
    body = _body(path, path.read_bytes())
    fast = _encode_fast(body)
    if fast is not None:
        return fast
    rows = _parse_rows(path, body)
    lengths = np.array([len(tokens) for tokens, _ in rows], dtype=np.int64)
    ids = np.fromiter((VOCAB[t] for tokens, _ in rows for t in tokens), np.uint8, lengths.sum())
    return ids, lengths, np.array([label for _, label in rows], dtype=np.int64)


def _body(path: Path, raw: bytes) -> bytes:
    """The rows after a checked header, ending with a newline; no rows is an error."""
    header, newline, body = raw.partition(b"\n")
    if header.removesuffix(b"\r") != HEADER.encode():
        raise ValueError(f"{path}: expected the header {HEADER!r}, got {header[:80]!r}")
    if not body:
        raise ValueError(f"{path}: expected rows of 'source<TAB>label' after the header, got none")
    return body if body.endswith(b"\n") else body + b"\n"


def _parse_rows(path: Path, body: bytes) -> list[tuple[list[str], int]]:
    """The line parser: the format's reference, naming the first offending line."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        line = body.count(b"\n", 0, error.start) + 2
        raise ValueError(
            f"{path}:{line}: expected UTF-8 text, got the bytes {body[error.start : error.end]!r}"
        ) from None
    rows = []
    for number, line in enumerate(text.split("\n")[:-1], start=2):
        fields = line.removesuffix("\r").split("\t")
        if len(fields) != 2 or fields[1] not in _LABEL_TEXTS:
            raise ValueError(
                f"{path}:{number}: expected 'source<TAB>label' with a label 0-9, got {line[:80]!r}"
            )
        rows.append((_source_tokens(fields[0], path, number), int(fields[1])))
    return rows


def _source_tokens(source: str, path: Path, number: int) -> list[str]:
    words = source.split()
    tokens = [word for word in words if word not in PARENTHESES]
    unknown = sorted(set(tokens).difference(VOCAB))
    if unknown:
        listed = clipped(unknown[:5], 80)
        more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        raise ValueError(f"{path}:{number}: unknown tokens {listed}{more}; expected {list(VOCAB)}")
    problem = _expression_problem(tokens) or _parentheses_problem(words)
    if problem:
        raise ValueError(f"{path}:{number}: expected one complete ListOps expression, {problem}")
    return tokens


def _expression_problem(tokens: list[str]) -> str | None:
    if not tokens:
        return "got no tokens"
    depth = 0
    for index, token in enumerate(tokens):
        if token == END:
            if depth == 0:
                return f"got a ']' with no open operator (token {index + 1})"
            if tokens[index - 1] in OPERATORS:
                return f"got an operator without arguments (token {index})"
            depth -= 1
        elif token in OPERATORS:
            depth += 1
        if depth == 0 and index < len(tokens) - 1:
            return f"got more after the expression ends (token {index + 2} of {len(tokens)})"
    return f"got {depth} operators left open" if depth else None


def _parentheses_problem(words: list[str]) -> str | None:
    depth = 0
    for word in words:
        depth += (word == "(") - (word == ")")
        if depth < 0:
            return "got a ')' with no '(' open"
    return f"got {depth} '(' left open" if depth else None


# The vectorised path, in chunks of whole rows. First it proves that the chunk is in the form
# the writers give (one token per whitespace-separated word, CR only before LF, no space next
# to a label): each byte falls in a class, and a table of forbidden neighbours (two one-byte
# tokens touching, a letter after a separator, a space after a tab, ...) leaves only one-byte
# tokens and '['-words, whose spelling is then checked. Then one bytes.translate keeps one
# byte per token (an operator keeps the letter that tells it apart: mIn, mAx, mEd, Sm) and
# drops parentheses and spaces.
_INVALID, _SPACE, _TAB, _CR, _LF, _ONE, _BRACKET, _LETTER = range(8)
_CLASS = np.full(256, _INVALID, dtype=np.uint8)
for _class, _bytes in (
    (_SPACE, b" "),
    (_TAB, b"\t"),
    (_CR, b"\r"),
    (_LF, b"\n"),
    (_ONE, b"()]0123456789"),
    (_BRACKET, b"["),
    (_LETTER, b"MINAXEDS"),
):
    _CLASS[list(_bytes)] = _class
# A byte pair (left, right) is forbidden when _LEFT_BITS[left] & _RIGHT_BITS[right] is not 0;
# each bit forbids one block of pairs, lefts x rights:
_FORBIDDEN = (
    ({_ONE}, {_ONE, _BRACKET, _LETTER}),
    ({_BRACKET, _LETTER}, {_ONE, _BRACKET}),
    ({_BRACKET}, {_SPACE, _TAB, _CR, _LF}),
    ({_SPACE, _TAB, _CR, _LF}, {_LETTER}),
    ({_TAB}, {_SPACE}),
    ({_SPACE}, {_CR, _LF}),
    ({_CR}, {_SPACE, _TAB, _CR, _ONE, _BRACKET, _LETTER}),
)
_LEFT_BITS, _RIGHT_BITS = np.zeros(8, dtype=np.uint8), np.zeros(8, dtype=np.uint8)
_LEFT_BITS[_INVALID] = _RIGHT_BITS[_INVALID] = 255  # a byte no such file holds
for _bit, (_lefts, _rights) in enumerate(_FORBIDDEN):
    _LEFT_BITS[list(_lefts)] |= 1 << _bit
    _RIGHT_BITS[list(_rights)] |= 1 << _bit
# byte -> bits, as bytes.translate tables (faster than a numpy lookup)
_LEFT_TABLE, _RIGHT_TABLE = _LEFT_BITS[_CLASS].tobytes(), _RIGHT_BITS[_CLASS].tobytes()
_IS_TOKEN_BYTE = _CLASS >= _ONE
_DELETED = b"([MNXD) "
_ID_OF_BYTE = np.full(256, 255, dtype=np.uint8)
for _token, _letter in (("[MIN", "I"), ("[MAX", "A"), ("[MED", "E"), ("[SM", "S")):
    _ID_OF_BYTE[ord(_letter)] = VOCAB[_token]
for _token in (END, *DIGITS):
    _ID_OF_BYTE[ord(_token)] = VOCAB[_token]
_NOT_PAREN = bytes(b for b in range(256) if b not in b"()\n")
_PAREN_STEP = bytes.maketrans(b"()\n", bytes([1, 255, 0]))  # as int8: +1, -1, 0


def _encode_fast(body: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(ids, lengths, labels) of `body` (rows, each ending in LF), or None when in doubt."""
    parts = []
    start = 0
    while start < len(body):
        stop = body.find(b"\n", start + _CHUNK_BYTES) + 1 or len(body)
        part = _encode_chunk(body[start:stop])
        if part is None:
            return None
        parts.append(part)
        start = stop
    return tuple(np.concatenate([part[k] for part in parts]) for k in range(3))


def _encode_chunk(chunk: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    if not _one_token_per_word(chunk):
        return None
    chars = np.frombuffer(chunk.translate(None, _DELETED), dtype=np.uint8)
    tabs, ends = np.flatnonzero(chars == ord("\t")), np.flatnonzero(chars == ord("\n"))
    if len(tabs) != len(ends):
        return None
    carriage = chars[ends - 1] == ord("\r")
    if np.any(ends - tabs != 2 + carriage):  # every row: tokens TAB digit [CR] LF
        return None
    labels = chars[tabs + 1].astype(np.int64) - ord("0")
    if np.any((labels < 0) | (labels >= NUM_CLASSES)):
        return None
    keep = np.ones(len(chars), dtype=bool)
    keep[np.concatenate([tabs, tabs + 1, ends, ends[carriage] - 1])] = False
    ids = _ID_OF_BYTE[chars[keep]]
    lengths = tabs - np.concatenate([[0], ends[:-1] + 1])
    if np.any(ids == 255) or lengths.min() == 0:
        return None
    if not _well_formed(ids, lengths) or not _parentheses_balance(chunk):
        return None
    return ids, lengths.astype(np.int64), labels


def _one_token_per_word(chunk: bytes) -> bool:
    if _CLASS[chunk[0]] in (_LETTER, _INVALID):
        return False
    left = np.frombuffer(chunk.translate(_LEFT_TABLE), dtype=np.uint8)
    right = np.frombuffer(chunk.translate(_RIGHT_TABLE), dtype=np.uint8)
    if np.any(left[:-1] & right[1:]):
        return False
    chars = np.frombuffer(chunk, dtype=np.uint8)
    # each '[' starts a word: a letter must follow it, and the word must spell an operator
    at = np.flatnonzero(chars == ord("["))
    second, third, fourth, fifth = (chars.take(at + k, mode="clip") for k in (1, 2, 3, 4))
    ends_at_4 = (second == ord("M")) & ~_IS_TOKEN_BYTE[fifth]
    spelled = (second == ord("S")) & (third == ord("M")) & ~_IS_TOKEN_BYTE[fourth]
    for name in ("MIN", "MAX", "MED"):
        spelled |= ends_at_4 & (third == ord(name[1])) & (fourth == ord(name[2]))
    return bool(np.all(spelled))


def _parentheses_balance(chunk: bytes) -> bool:
    """Parentheses never close more than is open and are all closed at each row's end."""
    marks = chunk.translate(None, _NOT_PAREN)
    steps = np.frombuffer(marks.translate(_PAREN_STEP), dtype=np.int8)
    depth = np.cumsum(steps, dtype=np.int32)
    return depth.min() >= 0 and not np.any(depth[steps == 0])


def _well_formed(ids: np.ndarray, lengths: np.ndarray) -> bool:
    """Each row one complete expression: operator depth above 0 inside a row, 0 at its last
    token and nowhere else, and no operator directly followed by ']'."""
    operator = ids <= len(OPERATORS)
    end = ids == VOCAB[END]
    depth = np.cumsum(operator.astype(np.int32) - end)
    row_last = np.cumsum(lengths) - 1
    closed = np.flatnonzero(depth <= 0)
    if not np.array_equal(closed, row_last) or np.any(depth[row_last] != 0):
        return False
    return not np.any(operator[:-1] & end[1:])


class ListOpsDataset(Dataset):
    """(token ids as a LongTensor, label 0-9) from a ListOps TSV file; id 0 pads.

    With `max_length` every sequence is truncated or padded to it; without, lengths vary
    (batch them with `neurojoule.data.tokens.pad_collate`).
    """

    def __init__(self, path: str | Path, max_length: int | None = None) -> None:
        if max_length is not None:
            max_length = check_seq_len(max_length, "ListOpsDataset max_length")
        self._ids, self.lengths, self.labels = encode_listops_file(path)
        self._offsets = np.concatenate([[0], np.cumsum(self.lengths)])
        self.max_length = max_length

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        start, stop = self._offsets[index], self._offsets[index + 1]
        ids = torch.from_numpy(self._ids[start:stop].astype(np.int64))
        if self.max_length is not None:
            ids = pad_to(ids, self.max_length)
        return ids, int(self.labels[index])


def find_listops_release(root: str | Path) -> dict[str, Path]:
    """The LRA release's basic_{train,val,test}.tsv in `root` or `root`/listops-1000."""
    root = Path(root)
    for folder in (root, root / "listops-1000", root / "lra_release" / "listops-1000"):
        paths = {split: folder / name for split, name in FILE_NAMES.items()}
        if all(path.is_file() for path in paths.values()):
            return paths
    raise FileNotFoundError(
        f"no ListOps files under {root}: expected {', '.join(FILE_NAMES.values())} in it or in "
        f"its listops-1000/ folder (the Long Range Arena release, lra_release.gz from "
        "https://github.com/google-research/long-range-arena); or generate them with "
        "listops_files()"
    )


def listops_datasets(
    spec: ListOpsSpec | None = None, root: str | Path | None = None, max_length: int | None = None
) -> tuple[ListOpsDataset, ListOpsDataset, ListOpsDataset]:
    """Train, val and test sets: from the LRA release files under `root`, else generated."""
    paths = find_listops_release(root) if root is not None else listops_files(spec)
    return tuple(ListOpsDataset(paths[split], max_length) for split in SPLITS)
