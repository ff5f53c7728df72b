import numpy as np
import pytest
import torch
from official_formats import write_cifar10, write_cifar100, write_fashion_torchvision

from neurojoule.data import FASHION_MNIST_MEAN_STD, TaskInfo, classification_task
from neurojoule.data.fashion_mnist import DEBIAN_DIR


def stack(dataset):
    inputs, labels = zip(*(dataset[i] for i in range(len(dataset))), strict=True)
    return torch.stack(inputs), [int(label) for label in labels]


def padded_crops(image, padding, fill):
    """Every crop back to the image's size of the image padded by hand with `fill` (a float or
    [C, 1, 1]), and their left-right mirrors."""
    channels, height, width = image.shape
    padded = torch.zeros(channels, height + 2 * padding, width + 2 * padding) + fill
    padded[:, padding : padding + height, padding : padding + width] = image
    crops = [
        padded[:, top : top + height, left : left + width]
        for top in range(2 * padding + 1)
        for left in range(2 * padding + 1)
    ]
    return crops + [crop.flip(-1) for crop in crops]


def test_fashion_mnist_images(tmp_path):
    root = write_fashion_torchvision(tmp_path, n_train=30, n_test=10)
    train, val, test, info = classification_task("fashion-mnist", root, val_fraction=0.2)
    assert (len(train), len(val), len(test)) == (24, 6, 10)
    assert set(train.indices).isdisjoint(val.indices)
    assert info == TaskInfo("fashion-mnist", 10, 784, in_channels=1, image_size=28)
    images, labels = stack(test)
    assert images.shape == (10, 1, 28, 28) and images.dtype == torch.float32
    assert images.min() >= 0.0 and images.max() <= 1.0
    assert labels == [i % 10 for i in range(10)]  # as written by write_fashion_torchvision


def test_cifar10_images_normalised_per_channel(tmp_path):
    batches = write_cifar10(tmp_path)
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.5)
    train, val, test, info = classification_task(
        "cifar10", tmp_path, normalize=(mean, std), val_fraction=0.2
    )
    assert (len(train), len(val), len(test)) == (8, 2, 3)
    assert info == TaskInfo("cifar10", 10, 1024, in_channels=3, image_size=32)
    images, labels = stack(test)
    raw = batches["test_batch"]["data"].reshape(3, 3, 32, 32) / 255.0
    expected = (raw - np.array(mean)[:, None, None]) / np.array(std)[:, None, None]
    torch.testing.assert_close(images, torch.tensor(expected, dtype=torch.float32))
    assert labels == batches["test_batch"]["labels"]


def test_cifar100_images_with_fine_labels(tmp_path):
    splits = write_cifar100(tmp_path)
    train, val, test, info = classification_task("cifar100", tmp_path, val_fraction=0.25)
    assert (len(train), len(val), len(test)) == (3, 1, 2)
    assert info == TaskInfo("cifar100", 100, 1024, in_channels=3, image_size=32)
    images, labels = stack(test)
    assert images.shape == (2, 3, 32, 32) and labels == splits["test"]["fine_labels"]
    train_labels = stack(train)[1] + stack(val)[1]
    assert sorted(train_labels) == sorted(splits["train"]["fine_labels"])


def test_digits_are_a_stratified_seeded_split_of_all_images():
    from sklearn.datasets import load_digits

    digits = load_digits()
    train, val, test, info = classification_task("digits", val_fraction=0.1, test_fraction=0.2)
    assert info == TaskInfo("digits", 10, 64, in_channels=1, image_size=8)
    assert len(train) + len(val) + len(test) == 1797
    assert (len(val), len(test)) == pytest.approx((180, 360), abs=1)
    parts = [stack(split) for split in (train, val, test)]
    images = torch.cat([part[0] for part in parts])
    assert images.shape == (1797, 1, 8, 8)
    expected = torch.tensor(digits.images / 16.0, dtype=torch.float32).unsqueeze(1)
    order = sorted(range(1797), key=lambda i: tuple(images[i].flatten().tolist()))
    expected_order = sorted(range(1797), key=lambda i: tuple(expected[i].flatten().tolist()))
    torch.testing.assert_close(images[order], expected[expected_order])
    val_counts = np.bincount(parts[1][1], minlength=10)
    assert np.all(np.abs(val_counts - np.bincount(digits.target) * 0.1) <= 1.5)
    again = classification_task("digits", seed=0)[1]
    other = classification_task("digits", seed=1)[1]
    assert torch.equal(stack(again)[0], parts[1][0])
    assert not torch.equal(stack(other)[0], parts[1][0])


def fashion_root(tmp_path):
    return write_fashion_torchvision(tmp_path, n_train=30, n_test=10)


@pytest.mark.parametrize(
    "name, make_root, normalize, padding, black",
    [
        ("fashion-mnist", fashion_root, FASHION_MNIST_MEAN_STD, 2, None),
        ("cifar10", write_cifar10, ((0.5, 0.4, 0.3), (0.2, 0.25, 0.5)), 3, None),
        ("digits", lambda path: None, None, 1, 0.0),
    ],
)
def test_augmentation_changes_only_the_training_inputs(
    tmp_path, name, make_root, normalize, padding, black
):
    make_root(tmp_path)
    root = None if name == "digits" else tmp_path
    options = dict(crop_padding=padding, flip=True, normalize=normalize, seed=3)
    clean = classification_task(name, root, **options)
    augmented = classification_task(name, root, augment=True, **options)
    assert augmented[3] == clean[3]
    for split in (1, 2):  # validation and test untouched
        clean_inputs, clean_labels = stack(clean[split])
        inputs, labels = stack(augmented[split])
        assert torch.equal(inputs, clean_inputs) and labels == clean_labels
    clean_inputs, clean_labels = stack(clean[0])
    inputs, labels = stack(augmented[0])
    assert labels == clean_labels
    assert not torch.equal(inputs, clean_inputs)
    for image, clean_image in zip(inputs[:20], clean_inputs[:20], strict=True):
        fill = black
        if fill is None:  # a 0 pixel once normalised, channel by channel
            mean, std = (torch.tensor(v, dtype=torch.float32) for v in normalize)
            fill = (-mean / std).reshape(-1, 1, 1)
        candidates = padded_crops(clean_image, padding, fill)
        assert any(torch.allclose(image, candidate) for candidate in candidates)


def test_image_tasks_name_their_options_and_check_them(tmp_path):
    write_cifar10(tmp_path)
    with pytest.raises(ValueError, match=r"no options \['crop_pad'\].*'crop_padding'.*'flip'"):
        classification_task("cifar10", tmp_path, crop_pad=2)
    with pytest.raises(
        ValueError, match="option crop_padding must be an integer >= 0 and <= 32, got -1"
    ):
        classification_task("cifar10", tmp_path, crop_padding=-1)
    with pytest.raises(ValueError, match="val_fraction \\+ test_fraction must be below 1"):
        classification_task("digits", val_fraction=0.5, test_fraction=0.5)


def test_classification_tasks_have_no_image_size(tmp_path):
    write_cifar10(tmp_path)
    assert classification_task("cifar-gray-seq", tmp_path)[3].image_size is None


@pytest.mark.skipif(not DEBIAN_DIR.is_dir(), reason=f"{DEBIAN_DIR} is absent")
def test_real_fashion_mnist_images():
    train, val, test, info = classification_task("fashion-mnist", augment=True)
    assert (len(train), len(val), len(test)) == (54_000, 6_000, 10_000)
    image, label = train[0]
    assert image.shape == (1, 28, 28) and 0 <= label < 10
