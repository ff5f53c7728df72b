import pytest
import torch
from official_formats import IMDB_REVIEWS, write_imdb

from neurojoule.data.imdb import IMDBDataset, imdb_files
from neurojoule.data.tokens import BYTE_VOCAB_SIZE


def byte_tokens(text, length):
    """Independent reference: UTF-8 byte + 1, cut or zero-padded to length."""
    ids = [byte + 1 for byte in text.encode("utf-8")][:length]
    return ids + [0] * (length - len(ids))


def test_reviews_become_padded_byte_tokens_with_sentiment_labels(tmp_path):
    write_imdb(tmp_path)
    dataset = IMDBDataset("train", tmp_path, max_length=32)
    texts = IMDB_REVIEWS[("train", "neg")] + IMDB_REVIEWS[("train", "pos")]
    labels = [0] * 3 + [1] * 2
    assert len(dataset) == len(texts)
    for index, (text, label) in enumerate(zip(texts, labels, strict=True)):
        ids, got_label = dataset[index]
        assert ids.dtype == torch.long and ids.shape == (32,)
        assert ids.tolist() == byte_tokens(text, 32)
        assert got_label == label
    assert int(dataset[4][0].max()) < BYTE_VOCAB_SIZE


def test_long_reviews_are_truncated_and_multibyte_characters_split_into_bytes(tmp_path):
    write_imdb(tmp_path)
    dataset = IMDBDataset("train", tmp_path / "aclImdb", max_length=5)
    ids, label = dataset[4]  # "Loved it <br /> café"
    assert ids.tolist() == byte_tokens("Loved", 5) and label == 1
    full, _ = IMDBDataset("train", tmp_path, max_length=4096)[4]
    assert full[19:22].tolist() == [0xC3 + 1, 0xA9 + 1, 0]  # é is two UTF-8 bytes


def test_test_split_and_file_order(tmp_path):
    write_imdb(tmp_path)
    files = imdb_files("test", tmp_path)
    assert [(path.parent.name, label) for path, label in files] == [("neg", 0), ("pos", 1)]


def test_missing_folder_says_where_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"aclImdb.*pos,neg.*aclImdb_v1.tar.gz"):
        IMDBDataset("train", tmp_path)
    with pytest.raises(ValueError, match="split"):
        imdb_files("unsup", tmp_path)
