"""The King James Bible as a language-modelling corpus, read offline from Debian's packages.

`bible-kjv` (the `bible` program) with `bible-kjv-text` prints every verse, one a line, as
"Ge1:1 In the beginning God created the heaven and the earth." (31102 verses, 66 books).
Word level: words, numbers and single punctuation marks are tokens, <eos> ends each verse, the
vocabulary comes from the training split (unseen words become <unk>). Byte level: each
verse's UTF-8 bytes and a newline, as ids byte + 1. Splits: "books" keeps the canonical order
and holds out whole books at the end (test: the last books, val: the ones before them);
"verses" draws a seeded share of verses for val and test, each split in canonical order.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections import Counter
from dataclasses import dataclass

import numpy as np
import torch

from neurojoule.data.corpus import EOS, Corpus, Vocabulary
from neurojoule.data.options import fraction
from neurojoule.data.tokens import BYTE_VOCAB_SIZE

PROGRAM = "bible"
WHOLE_BIBLE = "Gen1:1-Rev22:21"
VERSES = 31102
LEVELS = ("word", "byte")
SPLITS = ("books", "verses")
_VERSE_LINE = re.compile(r"(\d?[A-Za-z]+)(\d+):(\d+) (.*)")
_WORD = re.compile(r"[\w']+|[^\w\s]")


@dataclass(frozen=True)
class Verse:
    book: str  # the program's abbreviation: Ge, Exo, ..., Rev
    chapter: int
    verse: int
    text: str


def kjv_verses(program: str = PROGRAM) -> list[Verse]:
    """Every verse in canonical order, as the `bible` program prints them."""
    if shutil.which(program) is None:
        raise FileNotFoundError(
            f"the King James Bible needs the {program!r} program: install Debian's bible-kjv "
            "and bible-kjv-text (apt-get install bible-kjv bible-kjv-text)"
        )
    printed = subprocess.run(
        [program, "-f", WHOLE_BIBLE], capture_output=True, text=True, check=True
    ).stdout
    verses = [_parse(line) for line in printed.splitlines() if line.strip()]
    if len(verses) != VERSES:
        raise ValueError(f"expected {VERSES} verses from `{program}`, got {len(verses)}")
    return verses


def _parse(line: str) -> Verse:
    match = _VERSE_LINE.fullmatch(line.strip())
    if match is None:
        raise ValueError(f"expected a verse line like 'Ge1:1 In the beginning ...', got {line!r}")
    book, chapter, verse, text = match.groups()
    return Verse(book, int(chapter), int(verse), text)


def words(text: str) -> list[str]:
    """Word-level tokens: runs of letters, digits and apostrophes, or one punctuation mark."""
    return _WORD.findall(text)


def kjv_corpus(
    level: str = "word",
    lowercase: bool = True,
    split: str = "books",
    val_fraction: float = 0.05,
    test_fraction: float = 0.05,
    seed: int = 0,
    verses: list[Verse] | None = None,
) -> Corpus:
    """The Bible split into train/val/test id streams (`verses`: all of them when None)."""
    _check_options(level, split, val_fraction, test_fraction)
    verses = kjv_verses() if verses is None else verses
    texts = [verse.text.lower() if lowercase else verse.text for verse in verses]
    parts = _split_verses(verses, split, val_fraction, test_fraction, seed)
    chosen = {name: [texts[index] for index in indices] for name, indices in parts.items()}
    if level == "byte":
        ids = {name: _byte_ids(lines) for name, lines in chosen.items()}
        return Corpus(ids, BYTE_VOCAB_SIZE)
    counts = Counter(token for line in chosen["train"] for token in _verse_tokens(line))
    vocabulary = Vocabulary.from_counts(counts)
    ids = {
        name: vocabulary.encode(token for line in lines for token in _verse_tokens(line))
        for name, lines in chosen.items()
    }
    return Corpus(ids, len(vocabulary), vocabulary)


def _check_options(level: str, split: str, val_fraction: float, test_fraction: float) -> None:
    if level not in LEVELS:
        raise ValueError(f"KJV level must be one of {LEVELS}, got {level!r}")
    if split not in SPLITS:
        raise ValueError(f"KJV split must be one of {SPLITS}, got {split!r}")
    held_out = (
        fraction()("KJV val_fraction", val_fraction),
        fraction()("KJV test_fraction", test_fraction),
    )
    if sum(held_out) >= 1:
        raise ValueError(
            "KJV val_fraction and test_fraction must lie in (0, 1) and leave some training "
            f"text, got {val_fraction} and {test_fraction}"
        )


def _verse_tokens(line: str) -> list[str]:
    return [*words(line), EOS]


def _byte_ids(lines: list[str]) -> np.ndarray:
    data = "".join(line + "\n" for line in lines).encode("utf-8")
    return np.frombuffer(data, dtype=np.uint8).astype(np.int32) + 1


def _split_verses(
    verses: list[Verse], split: str, val_fraction: float, test_fraction: float, seed: int
) -> dict[str, list[int]]:
    """Verse indices of train, val and test, each in canonical order."""
    if split == "verses":
        order = torch.randperm(len(verses), generator=torch.Generator().manual_seed(seed))
        n_val, n_test = round(len(verses) * val_fraction), round(len(verses) * test_fraction)
        val, test = order[:n_val], order[n_val : n_val + n_test]
        rest = order[n_val + n_test :]
        return {
            name: sorted(part.tolist())
            for name, part in (("train", rest), ("val", val), ("test", test))
        }
    books = _book_ranges(verses)
    test_books = _last_books(books, test_fraction * len(verses))
    val_books = _last_books(books[: len(books) - test_books], val_fraction * len(verses))
    n_train_books = len(books) - test_books - val_books
    if n_train_books < 1:
        raise ValueError(
            f"KJV book split: val_fraction {val_fraction} and test_fraction {test_fraction} "
            f"leave no training book among {len(books)}"
        )
    bounds = [books[0][0], books[n_train_books][0], books[len(books) - test_books][0], len(verses)]
    return {
        name: list(range(bounds[i], bounds[i + 1]))
        for i, name in enumerate(("train", "val", "test"))
    }


def _book_ranges(verses: list[Verse]) -> list[tuple[int, int]]:
    """(first, stop) verse index of each book, in order."""
    starts = [i for i, verse in enumerate(verses) if i == 0 or verse.book != verses[i - 1].book]
    return list(zip(starts, [*starts[1:], len(verses)], strict=True))


def _last_books(books: list[tuple[int, int]], verses_wanted: float) -> int:
    """How many books, counted from the end, it takes to hold at least `verses_wanted`."""
    held = 0
    for count, (start, stop) in enumerate(reversed(books), start=1):
        held += stop - start
        if held >= verses_wanted:
            return count
    return len(books)
