import pytest
import torch
from official_formats import (
    write_aan,
    write_cifar10,
    write_fashion_torchvision,
    write_imdb,
    write_pathfinder,
)

from neurojoule.data import TASKS, classification_task


def first_input(dataset):
    return dataset[0][0]


def test_listops_is_generated_into_the_cache(cache):
    options = dict(n_train=40, n_val=10, n_test=10, min_length=20, max_length=80, seed=1)
    train, val, test, info = classification_task("listops", **options)
    assert (len(train), len(val), len(test)) == (40, 10, 10)
    assert (info.num_classes, info.vocab_size, info.seq_len) == (10, 16, 80)
    assert first_input(train).shape == (80,) and first_input(train).dtype == torch.long
    assert any(cache.rglob("basic_train.tsv"))
    *_, padded_info = classification_task("listops", seq_len=128, **options)
    assert padded_info.seq_len == 128


def test_fashion_mnist_tasks_hold_out_a_seeded_validation_fraction(tmp_path):
    root = write_fashion_torchvision(tmp_path, n_train=30, n_test=10)
    train, val, test, info = classification_task("fashion-mnist-seq", root, val_fraction=0.2)
    assert (len(train), len(val), len(test)) == (24, 6, 10)
    assert set(train.indices).isdisjoint(val.indices)
    assert (info.in_channels, info.num_classes, info.seq_len) == (1, 10, 784)
    assert first_input(train).shape == (784, 1)
    again = classification_task("fashion-mnist-seq", root, val_fraction=0.2)[1]
    assert again.indices == val.indices
    *_, perm_info = classification_task("fashion-mnist-perm", root, permutation_seed=3)
    assert perm_info.name == "fashion-mnist-perm"


def test_cifar_gray_classification_task(tmp_path):
    write_cifar10(tmp_path)
    train, val, test, info = classification_task("cifar-gray-seq", tmp_path, val_fraction=0.2)
    assert (len(train), len(val), len(test)) == (8, 2, 3)
    assert first_input(test).shape == (1024, 1) and info.in_channels == 1


def test_imdb_task(tmp_path):
    write_imdb(tmp_path)
    train, val, test, info = classification_task("imdb", tmp_path, seq_len=64, val_fraction=0.2)
    assert (len(train), len(val), len(test)) == (4, 1, 2)
    assert first_input(test).shape == (64,)
    assert (info.vocab_size, info.num_classes) == (257, 2)


def test_aan_task_uses_the_published_eval_split(tmp_path):
    write_aan(tmp_path)
    train, val, test, info = classification_task("aan", tmp_path, seq_len=16)
    assert (len(train), len(val), len(test)) == (3, 1, 2)
    assert first_input(val).shape == (2, 16) and info.paired


def test_pathfinder_task_splits_all_images(tmp_path):
    write_pathfinder(tmp_path, n=10)
    train, val, test, info = classification_task("pathfinder", tmp_path, val_fraction=0.2)
    assert (len(train), len(val), len(test)) == (7, 2, 1)
    indices = train.indices + val.indices + test.indices
    assert sorted(indices) == list(range(10))
    assert first_input(train).shape == (1024, 1) and info.seq_len == 1024


def test_unknown_names_and_options_raise_value_error():
    with pytest.raises(ValueError, match="unknown sequence task 'lisptops'.*listops"):
        classification_task("lisptops")
    with pytest.raises(ValueError, match=r"no options \['max_len'\].*'seq_len'"):
        classification_task("imdb", max_len=3)
    with pytest.raises(ValueError, match="seq_len 50 < max_length 60"):
        classification_task("listops", seq_len=50, min_length=20, max_length=60, n_train=4)
    assert len(TASKS) == 11
