import pickle

import numpy as np
import pytest
import torch
from official_formats import write_cifar10, write_cifar100, write_pickle

from neurojoule.data.cifar import (
    GRAY_MEAN_STD,
    CIFARDataset,
    cifar_class_names,
    load_cifar,
    read_cifar_batch,
)


def test_cifar10_splits_concatenate_the_batches_in_order(tmp_path):
    batches = write_cifar10(tmp_path)
    images, labels = load_cifar("train", tmp_path)
    expected = [batches[f"data_batch_{i}"] for i in range(1, 6)]
    assert images.shape == (10, 3, 32, 32) and images.dtype == np.uint8
    assert labels.tolist() == [label for batch in expected for label in batch["labels"]]
    test_images, test_labels = load_cifar("test", tmp_path / "cifar-10-batches-py")
    assert test_images.shape == (3, 3, 32, 32)
    assert test_labels.tolist() == batches["test_batch"]["labels"]
    assert cifar_class_names(tmp_path)[9] == "truck"


def test_image_mode_unpacks_planes_row_by_row(tmp_path):
    batches = write_cifar10(tmp_path)
    row = batches["test_batch"]["data"][1]
    image, label = CIFARDataset("test", tmp_path, mode="image")[1]
    assert image.shape == (3, 32, 32) and image.dtype == torch.float32
    # channel c, row r, column k sits at c * 1024 + r * 32 + k in the stored row
    for channel, r, k in ((0, 0, 0), (1, 2, 5), (2, 31, 30)):
        assert image[channel, r, k] == pytest.approx(row[channel * 1024 + r * 32 + k] / 255)
    assert label == batches["test_batch"]["labels"][1]


def test_gray_sequence_is_luma_pixel_by_pixel(tmp_path):
    batches = write_cifar10(tmp_path)
    row = batches["test_batch"]["data"][2].astype(np.float64) / 255
    red, green, blue = row[:1024], row[1024:2048], row[2048:]
    sequence, _ = CIFARDataset("test", tmp_path, mode="gray-sequence")[2]
    assert sequence.shape == (1024, 1)
    expected = 0.299 * red + 0.587 * green + 0.114 * blue
    assert np.allclose(sequence[:, 0].numpy(), expected, atol=1e-6)
    mean, std = GRAY_MEAN_STD
    normalised, _ = CIFARDataset("test", tmp_path, mode="gray-sequence", normalize=GRAY_MEAN_STD)[2]
    assert np.allclose(normalised[:, 0].numpy(), (expected - mean) / std, atol=1e-5)


def test_gray_of_pure_colours_by_hand(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar10(tmp_path)
    data = np.zeros((1, 3072), dtype=np.uint8)
    data[0, 0] = 255  # pixel 0 pure red
    data[0, 1024 + 1] = 255  # pixel 1 pure green
    data[0, 2048 + 2] = 255  # pixel 2 pure blue
    data[0, [3, 1024 + 3, 2048 + 3]] = 255  # pixel 3 white
    write_pickle(folder / "test_batch", {"data": data, "labels": [4]})
    sequence, label = CIFARDataset("test", tmp_path, mode="gray-sequence")[0]
    assert sequence[:5, 0].tolist() == pytest.approx([0.299, 0.587, 0.114, 1.0, 0.0])
    assert label == 4


def test_rgb_sequence_keeps_three_channels_per_step(tmp_path):
    batches = write_cifar10(tmp_path)
    row = batches["data_batch_1"]["data"][0]
    sequence, _ = CIFARDataset("train", tmp_path, mode="rgb-sequence")[0]
    assert sequence.shape == (1024, 3)
    step = 7 * 32 + 9
    assert sequence[step].tolist() == pytest.approx([row[c * 1024 + step] / 255 for c in range(3)])
    per_channel = CIFARDataset("train", tmp_path, mode="image", normalize=([0.1, 0.2, 0.3], 0.5))
    image, _ = per_channel[0]
    assert image[2, 7, 9].item() == pytest.approx((row[2048 + step] / 255 - 0.3) / 0.5, abs=1e-6)


def test_cifar100_reads_fine_labels(tmp_path):
    splits = write_cifar100(tmp_path)
    dataset = CIFARDataset("train", tmp_path, dataset="cifar100", mode="gray-sequence")
    assert dataset.labels.tolist() == splits["train"]["fine_labels"] == [99, 0, 57, 12]
    assert dataset.num_classes == 100
    assert dataset[0][0].shape == (1024, 1)
    assert len(CIFARDataset("test", tmp_path, dataset="cifar100")) == 2
    assert cifar_class_names(tmp_path, "cifar100")[99] == "fine99"


def test_missing_files_say_where_to_get_them(tmp_path):
    with pytest.raises(FileNotFoundError, match="data_batch_1.*cifar-10-python.tar.gz"):
        load_cifar("train", tmp_path)
    with pytest.raises(FileNotFoundError, match="cifar-100-python.tar.gz"):
        load_cifar("test", tmp_path, dataset="cifar100")


def test_truncated_pickle_raises_value_error(tmp_path):
    write_cifar10(tmp_path)
    path = tmp_path / "cifar-10-batches-py" / "test_batch"
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(ValueError, match="test_batch: expected a CIFAR python pickle"):
        load_cifar("test", tmp_path)


class _RunsCode:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_pickles_that_would_run_code_are_refused(tmp_path, capsys):
    path = tmp_path / "evil"
    path.write_bytes(pickle.dumps({b"data": _RunsCode(), b"labels": []}, protocol=2))
    with pytest.raises(ValueError, match=r"refusing to load (__builtin__|builtins)\.print"):
        read_cifar_batch(path)
    assert "never run" not in capsys.readouterr().out


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"data": np.zeros((2, 3072), np.uint8)}, "expected keys 'data' and 'labels'"),
        ({"data": np.zeros((2, 100), np.uint8), "labels": [0, 1]}, r"uint8 \[N, 3072\]"),
        ({"data": np.zeros((2, 3072), np.float32), "labels": [0, 1]}, "got float32"),
        ({"data": np.zeros((2, 3072), np.uint8), "labels": [0]}, "expected 2 labels"),
        ({"data": np.zeros((2, 3072), np.uint8), "labels": [0, 10]}, "integers 0-9, got 10"),
    ],
)
def test_malformed_batches_raise_value_error(tmp_path, content, message):
    path = tmp_path / "batch"
    write_pickle(path, content)
    with pytest.raises(ValueError, match=message):
        read_cifar_batch(path)
