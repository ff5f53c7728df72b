import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from official_formats import write_fashion_torchvision, write_idx

from neurojoule.data.fashion_mnist import (
    DEBIAN_DIR,
    FashionMNISTDataset,
    load_fashion_mnist,
    pixel_permutation,
)
from neurojoule.data.idx import read_idx

needs_debian_files = pytest.mark.skipif(
    not DEBIAN_DIR.is_dir(),
    reason=f"{DEBIAN_DIR} is absent: install Debian's dataset-fashion-mnist package",
)


@pytest.fixture(scope="module")
def real_test_split():
    return load_fashion_mnist("test")


@needs_debian_files
def test_real_files_have_the_published_counts_and_balanced_classes():
    for split, size in (("train", 60_000), ("test", 10_000)):
        images, labels = load_fashion_mnist(split)
        assert images.shape == (size, 28, 28) and images.dtype == np.uint8
        assert labels.shape == (size,)
        assert np.bincount(labels).tolist() == [size // 10] * 10
        assert 0 < images.mean() < 255


@needs_debian_files
def test_modes_shape_the_same_pixels(real_test_split):
    images, labels = real_test_split
    as_image = FashionMNISTDataset("test", mode="image")
    as_sequence = FashionMNISTDataset("test", mode="sequence")
    image, label = as_image[123]
    sequence, same_label = as_sequence[123]
    assert image.shape == (1, 28, 28) and sequence.shape == (784, 1)
    assert image.dtype == torch.float32
    assert image.min() >= 0.0 and image.max() <= 1.0
    assert torch.equal(image, torch.from_numpy(images[123]).float().unsqueeze(0) / 255)
    assert torch.equal(sequence[:, 0], image.flatten())  # row by row
    assert label == same_label == labels[123]
    assert len(as_sequence) == 10_000


@needs_debian_files
def test_permuted_is_a_fixed_permutation_of_sequential():
    sequential = FashionMNISTDataset("test", mode="sequence")
    permuted = FashionMNISTDataset("test", mode="permuted", permutation_seed=7)
    order = pixel_permutation(7)
    assert torch.equal(torch.sort(order).values, torch.arange(784))
    assert torch.equal(order, pixel_permutation(7))
    assert not torch.equal(order, pixel_permutation(8))
    for index in (0, 999):
        (plain, label), (shuffled, same_label) = sequential[index], permuted[index]
        assert torch.equal(shuffled, plain[order])
        assert torch.equal(
            torch.sort(shuffled.flatten()).values, torch.sort(plain.flatten()).values
        )
        assert label == same_label


@needs_debian_files
def test_normalisation_applies_mean_and_std():
    plain = FashionMNISTDataset("test", mode="sequence")[5][0]
    normalised = FashionMNISTDataset("test", mode="sequence", normalize=(0.25, 0.5))[5][0]
    assert torch.allclose(normalised, (plain - 0.25) / 0.5)


@needs_debian_files
def test_truncated_gzip_raises_value_error_naming_the_file(tmp_path):
    source = DEBIAN_DIR / "t10k-labels-idx1-ubyte.gz"
    truncated = tmp_path / "t10k-labels-idx1-ubyte.gz"
    truncated.write_bytes(source.read_bytes()[:2000])
    shutil.copy(DEBIAN_DIR / "t10k-images-idx3-ubyte.gz", tmp_path)
    with pytest.raises(ValueError, match="t10k-labels-idx1-ubyte.gz.*gzip"):
        load_fashion_mnist("test", root=tmp_path)


def test_torchvision_layout_uncompressed(tmp_path):
    root = write_fashion_torchvision(tmp_path, n_train=30, n_test=10)
    images, labels = load_fashion_mnist("train", root)
    assert images.shape == (30, 28, 28)
    assert labels.tolist() == [i % 10 for i in range(30)]
    dataset = FashionMNISTDataset("test", root, mode="permuted")
    assert len(dataset) == 10 and dataset[3][0].shape == (784, 1) and dataset[3][1] == 3


def test_truncated_uncompressed_file_raises_value_error(tmp_path):
    path = tmp_path / "images"
    write_idx(path, np.zeros((5, 28, 28)))
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ValueError, match=r"images: expected 3936 bytes .* got 3926"):
        read_idx(path, (None, 28, 28))


def test_wrong_magic_and_dimensions_raise_value_error(tmp_path):
    labels = tmp_path / "labels.gz"
    write_idx(labels, np.arange(4), compress=True)
    with pytest.raises(ValueError, match=r"labels.gz: expected the IDX magic number 0x00000803"):
        read_idx(labels, (None, 28, 28))
    images = tmp_path / "images"
    write_idx(images, np.zeros((2, 27, 28)))
    with pytest.raises(
        ValueError, match=r"expected dimensions \(None, 28, 28\), got \(2, 27, 28\)"
    ):
        read_idx(images, (None, 28, 28))


def test_label_count_must_match_image_count(tmp_path):
    root = write_fashion_torchvision(tmp_path)
    write_idx(tmp_path / "FashionMNIST" / "raw" / "t10k-labels-idx1-ubyte", np.arange(9))
    with pytest.raises(ValueError, match="expected 10 labels"):
        load_fashion_mnist("test", root)


def test_missing_files_say_where_to_get_them(tmp_path):
    with pytest.raises(FileNotFoundError, match="t10k-images-idx3-ubyte.*dataset-fashion-mnist"):
        load_fashion_mnist("test", root=tmp_path)


def test_gzip_and_plain_files_read_the_same(tmp_path):
    array = np.arange(2 * 28 * 28).reshape(2, 28, 28) % 256
    write_idx(tmp_path / "plain", array)
    (tmp_path / "packed").write_bytes(gzip.compress((tmp_path / "plain").read_bytes()))
    assert np.array_equal(read_idx(tmp_path / "plain", (2, 28, 28)), array)
    assert np.array_equal(read_idx(Path(tmp_path / "packed"), (2, 28, 28)), array)
