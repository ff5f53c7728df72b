"""Text <-> ids of a language-modelling task, as its model was trained: the same ids as the
task's own corpus, <unk> for unknown words, readable decoding, bytes that split characters."""

import shutil

import numpy as np
import pytest

from neurojoule.data import Vocabulary, kjv_corpus
from neurojoule.data.corpus import EOS, UNK
from neurojoule.data.text_codec import ByteCodec, WordCodec, lm_text_codec


def test_words_encode_with_unknowns_and_decode_with_spacing():
    vocabulary = Vocabulary(["the", "lord", ",", ".", "said", "(", ")", EOS, UNK])
    codec = WordCodec(vocabulary, str.split)
    ids = codec.encode("the lord said , ( the king ) .")
    assert vocabulary.decode(ids) == ["the", "lord", "said", ",", "(", "the", UNK, ")", "."]
    assert codec.start_ids == [vocabulary.ids[EOS]]
    text = codec.decode([*ids, vocabulary.ids[EOS], *ids[:2], 0])
    assert text == "the lord said, (the <unk>).\nthe lord"
    piece = codec.decoder()  # as tokens come: the same text
    assert "".join(piece(i) for i in [*ids, vocabulary.ids[EOS], *ids[:2]]) + piece(-1) == text


def test_bytes_round_trip_and_characters_split_across_tokens():
    codec = ByteCodec(lowercase=True)
    ids = codec.encode("Dieu créa\n")
    assert ids == [b + 1 for b in "dieu créa\n".encode()] and codec.vocab_size == 257
    assert codec.decode(ids) == "dieu créa\n"
    piece = codec.decoder()
    split = [piece(i) for i in codec.encode("é")]  # two bytes: nothing, then the letter
    assert split == ["", "é"]
    assert ByteCodec(lowercase=False).encode("A") == [ord("A") + 1]


def test_an_unknown_task_is_one_line():
    with pytest.raises(ValueError, match="language-modelling task"):
        lm_text_codec("listops")
    with pytest.raises(ValueError, match="has no options"):
        lm_text_codec("kjv", colour="red")


def test_wikitext_ids_are_the_corpus_ids(tmp_path, monkeypatch):
    from neurojoule.data import wikitext103

    monkeypatch.setenv("NEUROJOULE_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "wikitext-103"
    folder.mkdir()
    lines = ["a b c .", "b c d", "c d e ."]
    for split in ("train", "valid", "test"):
        (folder / f"wiki.{split}.tokens").write_text("\n".join(lines) + "\n")
    codec = lm_text_codec("wikitext-103", tmp_path, seq_len=8)
    corpus = wikitext103(tmp_path)
    expected = corpus.splits["train"][:5]  # "a b c ." and its <eos>
    assert codec.encode("a b c .") + codec.start_ids == expected.tolist()
    assert codec.vocab_size == corpus.vocab_size


@pytest.mark.skipif(shutil.which("bible") is None, reason="needs Debian's bible-kjv (`bible`)")
def test_kjv_ids_are_the_training_streams():
    codec = lm_text_codec("kjv", seq_len=256, level="word")
    corpus = kjv_corpus("word")
    first_verse = "In the beginning God created the heaven and the earth."
    ids = codec.encode(first_verse) + codec.start_ids  # a verse, then its end
    assert np.array_equal(ids, corpus.splits["train"][: len(ids)])
    assert codec.vocab_size == corpus.vocab_size
    assert codec.decode(ids) == first_verse.lower() + "\n"
    cased = lm_text_codec("kjv", lowercase=False, level="byte")
    assert cased.encode("In") == [ord("I") + 1, ord("n") + 1]
