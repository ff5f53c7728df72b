import shutil

import numpy as np
import pytest

from neurojoule.data import kjv_corpus, kjv_verses, lm_task
from neurojoule.data.kjv import Verse, words

needs_bible = pytest.mark.skipif(
    shutil.which("bible") is None,
    reason="needs the `bible` program of Debian's bible-kjv and bible-kjv-text",
)

VERSES = [
    Verse("Ge", 1, 1, "In the beginning God created the heaven and the earth."),
    Verse("Ge", 1, 2, "And the earth was without form, and void."),
    Verse("Exo", 1, 1, "Now these are the names."),
    Verse("Exo", 1, 2, "Reuben, Simeon, Levi, and Judah,"),
    Verse("Jude", 1, 1, "Jude, the servant of Jesus Christ."),
    Verse("Rev", 1, 1, "The Revelation of Jesus Christ."),
]


@needs_bible
def test_the_whole_bible_is_read_in_order():
    verses = kjv_verses()
    assert len(verses) == 31102
    assert verses[0] == Verse("Ge", 1, 1, VERSES[0].text)
    assert (verses[-1].book, verses[-1].chapter, verses[-1].verse) == ("Rev", 22, 21)
    assert len({verse.book for verse in verses}) == 66


@needs_bible
def test_kjv_task_holds_out_the_last_books():
    train, val, test, info = lm_task("kjv", seq_len=64)
    assert info.vocab_size > 10_000 and len(train) > 10 * len(test)
    x, y = train[0]
    assert x.shape == (64,) and (x[1:] == y[:-1]).all()


def test_missing_program_is_named():
    with pytest.raises(FileNotFoundError, match="bible-kjv-text"):
        kjv_verses(program="no-such-bible-program")


def test_words_split_off_punctuation():
    assert words("Jude, the servant's Christ.") == ["Jude", ",", "the", "servant's", "Christ", "."]


def test_book_split_keeps_canonical_order_and_whole_books():
    corpus = kjv_corpus(verses=VERSES, val_fraction=0.15, test_fraction=0.15)
    decode = corpus.vocabulary.decode
    # test: Revelation, whose words but "the" and "." never occur in Genesis and Exodus
    unk = "<unk>"
    assert decode(corpus.splits["test"]) == ["the", unk, unk, unk, unk, ".", "<eos>"]
    assert decode(corpus.splits["val"])[:2] == ["<unk>", ","]  # Jude, never seen in training
    assert decode(corpus.splits["train"])[:3] == ["in", "the", "beginning"]
    # counts: "," 5, "the" 5, <eos> 4, "and" 4; ties by token
    assert corpus.vocabulary.tokens[:5] == ["<pad>", ",", "the", "<eos>", "and"]


def test_cased_byte_level_corpus_round_trips_the_text():
    corpus = kjv_corpus("byte", lowercase=False, verses=VERSES, val_fraction=0.15,
                        test_fraction=0.15)  # fmt: skip
    assert corpus.vocab_size == 257 and corpus.vocabulary is None
    text = (corpus.splits["test"] - 1).astype(np.uint8).tobytes().decode()
    assert text == VERSES[-1].text + "\n"


def test_seeded_verse_split_is_a_partition_and_repeats():
    def split(seed):
        corpus = kjv_corpus("byte", verses=VERSES, split="verses", val_fraction=0.2,
                            test_fraction=0.2, seed=seed)  # fmt: skip
        return {name: bytes((ids - 1).astype(np.uint8)).decode() for name, ids in
                corpus.splits.items()}  # fmt: skip

    parts = split(0)
    lines = [line for text in parts.values() for line in text.splitlines()]
    assert sorted(lines) == sorted(verse.text.lower() for verse in VERSES)
    assert all(text.count("\n") == 1 for name, text in parts.items() if name != "train")
    assert split(0) == parts


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"level": "char"}, "level"),
        ({"split": "chapters"}, "split"),
        ({"val_fraction": 0.6, "test_fraction": 0.5}, "fraction"),
    ],
)
def test_bad_options_are_rejected(options, match):
    with pytest.raises(ValueError, match=match):
        kjv_corpus(verses=VERSES, **options)
