import numpy as np
import pytest
import torch

from neurojoule.data import TokenWindows, Vocabulary, find_wikitext103, lm_task, wikitext103
from neurojoule.data import wikitext as wikitext_module

TRAIN = "the cat sat on the mat\n\n = Heading = \nthe dog sat\n"
VALID = "the cat ran\n"
TEST = "a dog sat on the cat\n"


def write_wikitext(root, train=TRAIN, valid=VALID, test=TEST):
    folder = root / "wikitext-103"
    folder.mkdir(parents=True)
    for split, text in (("train", train), ("valid", valid), ("test", test)):
        (folder / f"wiki.{split}.tokens").write_text(text, encoding="utf-8")
    return folder


def test_vocabulary_sorts_by_count_then_token_after_padding(tmp_path, cache):
    corpus = wikitext103(write_wikitext(tmp_path))
    # counts: the 3, <eos> 4 (blank line too), sat 2, = 2, then single tokens by spelling
    assert corpus.vocabulary.tokens[:5] == ["<pad>", "<eos>", "the", "=", "sat"]
    assert corpus.vocabulary.tokens[5:] == ["Heading", "cat", "dog", "mat", "on", "<unk>"]
    assert corpus.vocab_size == 11


def test_every_line_ends_with_eos_and_unknown_words_become_unk(tmp_path, cache):
    corpus = wikitext103(write_wikitext(tmp_path))
    decode = corpus.vocabulary.decode
    assert decode(corpus.splits["train"][:8]) == [
        "the", "cat", "sat", "on", "the", "mat", "<eos>", "<eos>"
    ]  # fmt: skip
    assert decode(corpus.splits["val"]) == ["the", "cat", "<unk>", "<eos>"]
    assert decode(corpus.splits["test"])[:2] == ["<unk>", "dog"]


def test_encoded_ids_are_cached_and_reused(tmp_path, cache, monkeypatch):
    folder = write_wikitext(tmp_path)
    first = wikitext103(tmp_path)
    assert list(cache.rglob("train.npy")) and list(cache.rglob("vocab.json"))

    def must_not_encode(*args):
        raise AssertionError("encoded again instead of reading the cache")

    monkeypatch.setattr(wikitext_module, "_encode_into", must_not_encode)
    again = wikitext103(folder)  # the folder itself works as root too
    assert np.array_equal(first.splits["test"], again.splits["test"])
    assert again.vocabulary.tokens == first.vocabulary.tokens


def test_missing_files_name_the_expected_layout(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"wikitext-103.*wiki\.\{train,valid,test\}"):
        find_wikitext103(tmp_path)


def test_windows_are_contiguous_and_targets_shift_by_one():
    ids = np.arange(1, 12, dtype=np.int32)  # 11 ids: 10 targets
    windows = TokenWindows(ids, seq_len=4)
    assert len(windows) == 3
    x, y = windows[0]
    assert x.tolist() == [1, 2, 3, 4] and y.tolist() == [2, 3, 4, 5]
    assert windows[1][0].tolist() == [5, 6, 7, 8]
    last_x, last_y = windows[2]
    assert last_x.tolist() == [9, 10, 11, 0] and last_y.tolist() == [10, 11, 0, 0]
    targets = torch.cat([windows[i][1] for i in range(len(windows))])
    assert sorted(targets[targets != 0].tolist()) == list(range(2, 12))  # each once
    with pytest.raises(IndexError):
        windows[3]


def test_lm_task_builds_windows_and_info(tmp_path, cache):
    write_wikitext(tmp_path)
    train, val, test, info = lm_task("wikitext-103", tmp_path, seq_len=4)
    assert (info.name, info.vocab_size, info.num_classes, info.seq_len) == (
        "wikitext-103", 11, 11, 4
    )  # fmt: skip
    x, y = train[0]
    assert x.dtype == torch.long and x.shape == (4,) and torch.equal(x[1:], y[:-1])
    with pytest.raises(ValueError, match="no options"):
        lm_task("wikitext-103", tmp_path, seq_length=4)
    with pytest.raises(ValueError, match="unknown language-modelling task"):
        lm_task("wikitext-2")


def test_vocabulary_without_unk_rejects_unknown_tokens():
    vocabulary = Vocabulary(["a", "b"])
    assert vocabulary.encode(["b", "a"]).tolist() == [2, 1]
    with pytest.raises(ValueError, match="'c' is not in the vocabulary"):
        vocabulary.encode(["c"])


@pytest.mark.parametrize(
    ("name", "damage"),
    [("vocab.json", b'["<pad>", '), ("valid.npy", b"\x93NUMPY"), ("test.npy", b"")],
)
def test_a_broken_cache_entry_is_encoded_again(tmp_path, cache, name, damage):
    folder = write_wikitext(tmp_path)
    first = wikitext103(folder)
    tokens = first.vocabulary.tokens
    ids = {split: np.array(stream) for split, stream in first.splits.items()}  # off the maps
    del first
    (damaged,) = cache.rglob(name)
    damaged.write_bytes(damage)
    again = wikitext103(folder)
    assert again.vocabulary.tokens == tokens
    for split, stream in ids.items():
        assert np.array_equal(again.splits[split], stream)
