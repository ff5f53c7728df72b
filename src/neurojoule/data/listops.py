"""ListOps (Long Range Arena): a seeded generator to the LRA specification and its files.

The specification (Tay et al. 2021, Long Range Arena, the `listops` generator of its release):
tokens ``[MIN [MAX [MED [SM``, the digits 0-9 and ``]``. The root sits at depth 1; a node
above `max_depth` is an operator with probability 0.25 and otherwise a uniformly drawn digit;
a node at `max_depth` is always a digit. An operator takes 2..`max_args` arguments (uniform)
and its length is 2 tokens plus its arguments' lengths. MED is ``int(numpy.median(args))``,
SM is ``sum(args) % 10``. Only trees with ``min_length < length < max_length`` are kept,
duplicates dropped. Files are TSV with the header ``Source\\tTarget``; the source wraps every
(expression, argument) pair in ``(`` ``)``, e.g. ``( ( ( [MAX 2 ) 9 ) ] )``; loaders strip them.

Generation cost: a tree is drawn whole and kept only when its length falls in the window, so
the time per kept example is the time per draw divided by the acceptance probability. Most
draws are tiny (the root is a digit 75 % of the time), and this generator abandons a draw as
soon as it reaches `max_length`, so a rejected long draw costs at most `max_length` tokens.
Measured on one core with max_depth 10, max_args 10:

    window        acceptance   per kept example
    20-100          4 %          0.11 ms
    100-400         3.6 %        0.5 ms     (6000 examples with their files: 3.4 s)
    500-2000        8.3 %        0.5 ms     (LRA default, 100k examples: 90 s with the files)
    1000-4000       4.8 %        1.1 ms
    2000-8000       1.2 %        3.6 ms
    4000-16000      0.03 %       170 ms     (depth 10 rarely grows this long: raise max_depth)

The default set's training file is about 640 MB (the parentheses triple its size). Reading
files (these or the LRA release's) into a dataset: `neurojoule.data.listops_reader`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import random
from collections.abc import Callable, Iterator
from pathlib import Path

from neurojoule.data.cache import cache_dir
from neurojoule.data.options import SEED_MAX, integer
from neurojoule.util.files import atomic_write_text, atomic_writer

log = logging.getLogger(__name__)

OPERATORS = ("[MIN", "[MAX", "[MED", "[SM")
END = "]"
DIGITS = tuple(str(d) for d in range(10))
OPERATOR_PROBABILITY = 0.25
PARENTHESES = ("(", ")")

VOCAB = {token: index + 1 for index, token in enumerate((*OPERATORS, END, *DIGITS))}
VOCAB_SIZE = len(VOCAB) + 1  # id 0 pads
NUM_CLASSES = 10
SPLITS = ("train", "val", "test")
FILE_NAMES = {split: f"basic_{split}.tsv" for split in SPLITS}  # the LRA release's names
HEADER = "Source\tTarget"

_FORMAT_VERSION = 1
_MAX_FRUITLESS_DRAWS = 2_000_000


def _median(values: list[int]) -> int:
    # int(numpy.median(values)) without numpy's per-call cost; values are >= 0, so // floors
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) // 2


_APPLY: dict[str, Callable[[list[int]], int]] = {
    "[MIN": min,
    "[MAX": max,
    "[MED": _median,
    "[SM": lambda values: sum(values) % 10,
}


@dataclasses.dataclass(frozen=True)
class ListOpsSpec:
    """Everything that decides a generated ListOps set; the defaults are LRA's."""

    n_train: int = 96_000
    n_val: int = 2_000
    n_test: int = 2_000
    min_length: int = 500
    max_length: int = 2_000
    max_depth: int = 10
    max_args: int = 10
    seed: int = 0

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            low = _FIELD_MINIMUM.get(field.name, 0)
            high = SEED_MAX if field.name == "seed" else None
            value = integer(low, high)(f"ListOps {field.name}", getattr(self, field.name))
            object.__setattr__(self, field.name, value)  # a numpy integer becomes an int
        if not 0 <= self.min_length < self.max_length - 1:
            raise ValueError(
                "need 0 <= min_length < max_length - 1 so that some length fits strictly "
                f"between them, got min_length={self.min_length}, max_length={self.max_length}"
            )
        longest = _longest_possible(self.max_depth, self.max_args, self.min_length)
        if longest <= self.min_length:
            raise ValueError(
                f"no tree with max_depth={self.max_depth}, max_args={self.max_args} is longer "
                f"than {longest} tokens, so none can exceed min_length={self.min_length}"
            )

    def split_sizes(self) -> dict[str, int]:
        return {"train": self.n_train, "val": self.n_val, "test": self.n_test}

    def cache_name(self) -> str:
        return (
            f"listops-v{_FORMAT_VERSION}/train{self.n_train}-val{self.n_val}-test{self.n_test}"
            f"-len{self.min_length}-{self.max_length}-depth{self.max_depth}"
            f"-args{self.max_args}-seed{self.seed}"
        )


_FIELD_MINIMUM = {"max_depth": 1, "max_args": 2}


def _longest_possible(max_depth: int, max_args: int, enough: int) -> int:
    """The longest tree's length, or a length above `enough` (a deep bound grows huge)."""
    length = 1
    for _ in range(max_depth - 1):
        if length > enough:
            break
        length = 2 + max_args * length
    return length


class _TooLong(Exception):
    pass


def _grow(spec: ListOpsSpec, draw: Callable[[], float], depth: int, out: list[str]) -> int:
    """Append the tokens of one random subtree to `out`; return its value."""
    if depth >= spec.max_depth or draw() > OPERATOR_PROBABILITY:
        digit = int(draw() * 10)
        out.append(DIGITS[digit])
        return digit
    operator = OPERATORS[int(draw() * len(OPERATORS))]
    n_args = 2 + int(draw() * (spec.max_args - 1))
    out.append(operator)
    values = []
    for _ in range(n_args):
        values.append(_grow(spec, draw, depth + 1, out))
        if len(out) >= spec.max_length:
            raise _TooLong
    out.append(END)
    return _APPLY[operator](values)


def _draw_tree(spec: ListOpsSpec, draw: Callable[[], float]) -> tuple[list[str], int] | None:
    """One draw from the LRA tree distribution: (tokens, value), or None when out of the window."""
    tokens: list[str] = []
    try:
        value = _grow(spec, draw, 1, tokens)
    except _TooLong:
        return None
    if spec.min_length < len(tokens) < spec.max_length:
        return tokens, value
    return None


def iter_listops(spec: ListOpsSpec) -> Iterator[tuple[list[str], int]]:
    """Endless stream of distinct (tokens, value) examples in the window; seeded by spec.seed."""
    draw = random.Random(spec.seed).random
    seen: set[bytes] = set()  # digests, so that 100k long sources need not stay in memory
    fruitless = 0
    while True:
        example = _draw_tree(spec, draw)
        if example is not None:
            digest = hashlib.blake2b(" ".join(example[0]).encode(), digest_size=16).digest()
            if digest not in seen:
                seen.add(digest)
                fruitless = 0
                yield example
                continue
        fruitless += 1
        if fruitless > _MAX_FRUITLESS_DRAWS:
            raise ValueError(
                f"{_MAX_FRUITLESS_DRAWS} draws in a row gave no new example with min_length "
                f"{spec.min_length} < length < max_length {spec.max_length} (max_depth "
                f"{spec.max_depth}, max_args {spec.max_args}): the window holds too few "
                "distinct trees; widen it"
            )


def generate_listops(spec: ListOpsSpec) -> dict[str, list[tuple[list[str], int]]]:
    """The train/val/test examples of `spec` in memory (the same ones `write_listops` writes)."""
    stream = iter_listops(spec)
    return {
        split: [next(stream) for _ in range(size)] for split, size in spec.split_sizes().items()
    }


def listops_source(tokens: list[str]) -> str:
    """The LRA file form of an expression: every (expression, argument) pair in parentheses."""
    counts = _argument_counts(tokens)
    parts: list[str] = []
    open_operators = 0
    for index, token in enumerate(tokens):
        if token in OPERATORS:
            parts.append("( " * (counts[index] + 1) + token)
            open_operators += 1
            continue
        if token == END:
            parts.append("] )")
            open_operators -= 1
        else:
            parts.append(token)
        if open_operators:  # a finished argument closes the pair it forms with its operator
            parts.append(")")
    return " ".join(parts)


def _argument_counts(tokens: list[str]) -> dict[int, int]:
    """Operator position -> number of its arguments."""
    counts: dict[int, int] = {}
    open_positions: list[int] = []
    for index, token in enumerate(tokens):
        if open_positions and token != END:
            counts[open_positions[-1]] += 1
        if token in OPERATORS:
            open_positions.append(index)
            counts[index] = 0
        elif token == END:
            open_positions.pop()
    return counts


def listops_value(tokens: list[str]) -> int:
    """Evaluate a ListOps expression given as tokens (parentheses allowed and ignored)."""
    arguments: list[list[int]] = [[]]  # the bottom list receives the root's value
    operators: list[str] = []
    for token in tokens:
        if token in PARENTHESES:
            continue
        if token in OPERATORS:
            operators.append(token)
            arguments.append([])
        elif token == END:
            if not operators or not arguments[-1]:
                raise ValueError(
                    f"']' without an open operator with arguments in {_excerpt(tokens)}"
                )
            values = arguments.pop()
            arguments[-1].append(_APPLY[operators.pop()](values))
        elif token in DIGITS:
            arguments[-1].append(int(token))
        else:
            raise ValueError(f"unknown ListOps token {token!r}; expected one of {list(VOCAB)}")
    if operators or len(arguments[0]) != 1:
        raise ValueError(f"expected one complete expression, got {_excerpt(tokens)}")
    return arguments[0][0]


def _excerpt(tokens: list[str], limit: int = 80) -> str:
    text = " ".join(tokens)
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


def write_listops(folder: str | Path, spec: ListOpsSpec) -> dict[str, Path]:
    """Write basic_{train,val,test}.tsv for `spec` into `folder`, each file atomically."""
    folder = Path(folder)
    stream = iter_listops(spec)
    paths = {}
    for split, size in spec.split_sizes().items():
        paths[split] = folder / FILE_NAMES[split]
        with atomic_writer(paths[split]) as out:
            out.write(HEADER + "\n")
            for _ in range(size):
                tokens, value = next(stream)
                out.write(f"{listops_source(tokens)}\t{value}\n")
    return paths


def listops_files(
    spec: ListOpsSpec | None = None, cache: str | Path | None = None
) -> dict[str, Path]:
    """Paths of the generated files of `spec` under the cache folder, generating them if absent.

    The folder name holds every parameter; a `spec.json` written last marks a complete set.
    """
    spec = spec or ListOpsSpec()
    folder = Path(cache or cache_dir()) / spec.cache_name()
    marker = folder / "spec.json"
    expected = json.dumps(dataclasses.asdict(spec), sort_keys=True)
    paths = {split: folder / name for split, name in FILE_NAMES.items()}
    complete = all(path.exists() for path in paths.values())
    if complete and marker.exists() and marker.read_text() == expected:
        return paths
    log.info("generating ListOps %s into %s", spec, folder)
    paths = write_listops(folder, spec)
    atomic_write_text(marker, expected)
    return paths
