"""Text <-> token ids of a language-modelling task, as its model was trained on them.

A checkpoint stores the task and its options, not the vocabulary: a word-level vocabulary is
rebuilt from the task's training split, which gives the same ids for the same options (the
KJV: the `bible` program's text; WikiText-103: its release files, cached). Byte-level ids are
byte + 1 and need no data.

Encoding follows the task's own tokenisation (KJV: lower-cased when the task was, words and
single punctuation marks; WikiText: whitespace-separated tokens); a word outside the
vocabulary becomes <unk>. Decoding joins words with spaces, none before closing punctuation,
and ends a line at <eos>. `start_ids` are what precedes a fresh text in the training stream
(the end of the previous verse or line), so a prompt can begin where text begins.
"""

from __future__ import annotations

import codecs
import inspect
from collections.abc import Callable, Iterable
from pathlib import Path

from neurojoule.data.corpus import EOS, PAD_TOKEN, Vocabulary
from neurojoule.data.kjv import kjv_corpus, words
from neurojoule.data.tasks import LM_TASKS, check_task_options
from neurojoule.data.tokens import BYTE_VOCAB_SIZE, PAD_ID
from neurojoule.data.wikitext import wikitext103

NO_SPACE_BEFORE = frozenset(".,;:!?)]}'")
NO_SPACE_AFTER = frozenset("([{")


class TextCodec:
    """Encode text to ids and decode ids to text for one task's vocabulary (see module doc)."""

    vocab_size: int
    start_ids: list[int]

    def encode(self, text: str) -> list[int]:
        raise NotImplementedError

    def decoder(self) -> Callable[[int], str]:
        """A stateful function id -> the text it adds, for printing as tokens come."""
        raise NotImplementedError

    def decode(self, ids: Iterable[int]) -> str:
        piece = self.decoder()
        return "".join(piece(int(index)) for index in ids) + piece(-1)


class WordCodec(TextCodec):
    """Word-level ids of a Vocabulary; `split` turns text into the task's tokens."""

    def __init__(self, vocabulary: Vocabulary, split: Callable[[str], list[str]]):
        self.vocabulary, self.split = vocabulary, split
        self.vocab_size = len(vocabulary)
        self.start_ids = [vocabulary.ids[EOS]] if EOS in vocabulary.ids else []

    def encode(self, text: str) -> list[int]:
        return [int(index) for index in self.vocabulary.encode(self.split(text))]

    def decoder(self) -> Callable[[int], str]:
        previous = "\n"  # nothing yet: the first word takes no space

        def piece(index: int) -> str:
            nonlocal previous
            if index < 0:  # the end: words hold nothing back
                return ""
            token = self.vocabulary.tokens[index]
            if token == PAD_TOKEN:
                return ""
            if token == EOS:
                previous = "\n"
                return "\n"
            joined = previous == "\n" or previous in NO_SPACE_AFTER or token in NO_SPACE_BEFORE
            previous = token
            return token if joined else " " + token

        return piece


class ByteCodec(TextCodec):
    """Byte-level ids (byte + 1) of UTF-8 text, lower-cased first when `lowercase`."""

    def __init__(self, lowercase: bool):
        self.lowercase = lowercase
        self.vocab_size = BYTE_VOCAB_SIZE
        self.start_ids = [ord("\n") + 1]

    def encode(self, text: str) -> list[int]:
        text = text.lower() if self.lowercase else text
        return [byte + 1 for byte in text.encode("utf-8")]

    def decoder(self) -> Callable[[int], str]:
        utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")

        def piece(index: int) -> str:
            if index < 0:
                return utf8.decode(b"", final=True)
            return "" if index == PAD_ID else utf8.decode(bytes([index - 1]))

        return piece


def lm_text_codec(task: str, root: str | Path | None = None, **options) -> TextCodec:
    """The codec of a language-modelling task (LM_TASKS) with its options, as in training."""
    if task not in LM_TASKS:
        raise ValueError(f"expected a language-modelling task {list(LM_TASKS)}, got {task!r}")
    options = {**_defaults(LM_TASKS[task]), **check_task_options(task, options)}
    options.pop("seq_len", None)
    if task == "wikitext-103":
        return WordCodec(wikitext103(root).vocabulary, str.split)
    lowercase = options["lowercase"]
    if options["level"] == "byte":
        return ByteCodec(lowercase)
    vocabulary = kjv_corpus(**options).vocabulary
    return WordCodec(vocabulary, lambda text: words(text.lower() if lowercase else text))


def _defaults(build: Callable) -> dict:
    """The options a task builder takes and their defaults (what a config leaves out)."""
    parameters = inspect.signature(build).parameters.values()
    return {p.name: p.default for p in parameters if p.name != "root"}
