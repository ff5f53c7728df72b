"""WikiText-103, word level, from its raw release files.

Official layout (Merity et al. 2016, wikitext-103-v1.zip): wikitext-103/wiki.train.tokens,
wiki.valid.tokens, wiki.test.tokens; text already tokenised, tokens separated by spaces,
rare words replaced by <unk>. As in Transformer-XL and fairseq, every line (blank ones too)
becomes its whitespace tokens followed by <eos>. The vocabulary comes from the training split,
by falling frequency, ties by token, after id 0 (padding). Encoded ids (int32) and the
vocabulary are cached under cache_dir()/wikitext-103/<key>, the key naming the files' path,
size and modification time; the first encoding of the full release takes a minute or two.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from neurojoule.data.cache import cache_dir
from neurojoule.data.corpus import EOS, PAD_TOKEN, Corpus, Vocabulary
from neurojoule.util.files import atomic_write_text, atomic_writer

log = logging.getLogger(__name__)

SPLITS = ("train", "valid", "test")
FOLDER = "wikitext-103"
SOURCE = "https://s3.amazonaws.com/research.metamind.io/wikitext/wikitext-103-v1.zip"


def find_wikitext103(root: str | Path | None = None) -> Path:
    """The folder holding wiki.{train,valid,test}.tokens: `root`/wikitext-103 or `root`."""
    root = Path(root) if root is not None else cache_dir()
    for folder in (root / FOLDER, root):
        if all((folder / f"wiki.{split}.tokens").is_file() for split in SPLITS):
            return folder
    raise FileNotFoundError(
        f"WikiText-103 not found under {root}: expected {root / FOLDER}/"
        "wiki.{train,valid,test}.tokens (extract " + SOURCE + " there or pass its folder "
        "as root)"
    )


def line_tokens(path: Path) -> Iterator[str]:
    """The tokens of a release file, <eos> after every line."""
    number = 0
    with path.open(encoding="utf-8") as lines:
        try:
            for number, line in enumerate(lines, start=1):
                words = line.split()
                if PAD_TOKEN in words:
                    raise ValueError(
                        f"{path}:{number}: the token {PAD_TOKEN!r} is reserved for padding; "
                        "expected WikiText's tokens"
                    )
                yield from words
                yield EOS
        except UnicodeDecodeError as error:
            bad = error.object[error.start : error.end]
            raise ValueError(
                f"{path}: expected UTF-8 text, got the bytes {bad!r} after line {number}"
            ) from None


def wikitext103(root: str | Path | None = None) -> Corpus:
    """The three splits as int32 ids ("valid" is the corpus's "val"), encoded once, cached."""
    folder = find_wikitext103(root)
    cached = cache_dir() / FOLDER / _cache_key(folder)
    if (cached / "vocab.json").is_file():
        corpus = _read_cache(cached)
        if corpus is not None:
            return corpus
        log.warning("the WikiText-103 cache %s is broken; encoding the files again", cached)
    _encode_into(folder, cached)
    corpus = _read_cache(cached)
    if corpus is None:
        raise ValueError(f"{cached}: the WikiText-103 cache just written cannot be read back")
    return corpus


def _read_cache(cached: Path) -> Corpus | None:
    """The cached corpus, or None when a file of it is unreadable or of the wrong kind."""
    try:
        tokens = json.loads((cached / "vocab.json").read_text(encoding="utf-8"))
        vocabulary = Vocabulary(tokens[1:])
        ids = {
            name: np.load(cached / f"{split}.npy", mmap_mode="r")
            for name, split in zip(("train", "val", "test"), SPLITS, strict=True)
        }
    except (OSError, ValueError, TypeError, IndexError, EOFError):
        return None
    if any(stream.dtype != np.int32 or stream.ndim != 1 for stream in ids.values()):
        return None
    return Corpus(ids, len(vocabulary), vocabulary)


def _encode_into(folder: Path, cached: Path) -> None:
    vocabulary = Vocabulary.from_counts(Counter(line_tokens(folder / "wiki.train.tokens")))
    for split in SPLITS:
        ids = vocabulary.encode(line_tokens(folder / f"wiki.{split}.tokens"))
        with atomic_writer(cached / f"{split}.npy", "wb") as stream:
            np.save(stream, ids)
    # written last: its presence marks a complete cache entry
    atomic_write_text(cached / "vocab.json", json.dumps(vocabulary.tokens))


def _cache_key(folder: Path) -> str:
    stamps = []
    for split in SPLITS:
        status = (folder / f"wiki.{split}.tokens").stat()
        stamps.append([split, status.st_size, status.st_mtime_ns])
    text = json.dumps([str(folder.resolve()), stamps])
    return hashlib.sha256(text.encode()).hexdigest()[:16]
