import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from neurojoule.data.augment import Augmented, ImageAugmentation, random_crop, random_flip


def distinct_image(channels=2, height=5, width=6):
    """Every pixel different and none zero, so a crop's offset can be read off its content."""
    return torch.arange(1, channels * height * width + 1, dtype=torch.float32).reshape(
        channels, height, width
    )


def manual_crops(image, padding, fill=0.0):
    """{(top, left): crop} for every offset, from a zero- (or fill-) padded copy built by hand."""
    channels, height, width = image.shape
    padded = torch.empty(channels, height + 2 * padding, width + 2 * padding)
    for c in range(channels):
        value = fill[c] if isinstance(fill, (list, tuple)) else fill
        padded[c] = value
        padded[c, padding : padding + height, padding : padding + width] = image[c]
    return {
        (top, left): padded[:, top : top + height, left : left + width]
        for top in range(2 * padding + 1)
        for left in range(2 * padding + 1)
    }


def offset_of(crop, crops):
    matches = [offset for offset, candidate in crops.items() if torch.equal(crop, candidate)]
    assert len(matches) == 1, f"the crop matches {len(matches)} manual crops"
    return matches[0]


def test_random_crop_is_a_slice_of_the_zero_padded_image_at_every_offset():
    image, padding = distinct_image(), 1
    crops = manual_crops(image, padding)
    generator = torch.Generator().manual_seed(0)
    offsets = [offset_of(random_crop(image, padding, generator), crops) for _ in range(200)]
    assert set(offsets) == set(crops)  # all 9 offsets drawn


def test_random_crop_with_larger_padding_and_a_fill_per_channel():
    image, padding, fill = distinct_image(channels=3), 4, (-1.0, -2.5, 7.0)
    crops = manual_crops(image, padding, fill)
    generator = torch.Generator().manual_seed(3)
    fill_tensor = torch.tensor(fill).reshape(3, 1, 1)
    for _ in range(20):
        crop = random_crop(image, padding, generator, fill_tensor)
        assert crop.shape == image.shape
        offset_of(crop, crops)


def test_random_crop_is_reproducible_from_the_generator_seed():
    image = distinct_image()
    first = [random_crop(image, 3, torch.Generator().manual_seed(7)) for _ in range(2)]
    assert torch.equal(first[0], first[1])
    draws = [random_crop(image, 3, torch.Generator().manual_seed(seed)) for seed in range(10)]
    assert any(not torch.equal(draws[0], draw) for draw in draws[1:])


def test_zero_padding_returns_the_image():
    image = distinct_image()
    assert torch.equal(random_crop(image, 0, torch.Generator()), image)


def test_random_flip_mirrors_left_to_right_or_not_at_all():
    image = distinct_image()
    mirrored = image[:, :, torch.arange(image.shape[-1] - 1, -1, -1)]
    generator = torch.Generator().manual_seed(0)
    outcomes = []
    for _ in range(100):
        flipped = random_flip(image, generator)
        assert torch.equal(flipped, mirrored) or torch.equal(flipped, image)
        outcomes.append(torch.equal(flipped, mirrored))
    assert 30 < sum(outcomes) < 70


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: random_crop(distinct_image(), -1), "padding must be an int >= 0, got -1"),
        (lambda: random_crop(distinct_image(), 1.5), "padding must be an int >= 0"),
        (lambda: random_crop(torch.zeros(5, 6), 1), r"expected an image tensor \[C, H, W\]"),
        (lambda: random_flip(torch.zeros(1, 2, 5, 6)), r"got \[1, 2, 5, 6\]"),
        (lambda: random_flip([[1.0]]), "got list"),
        (lambda: ImageAugmentation(crop_padding=-2), "crop_padding must be an int >= 0"),
        (lambda: Augmented(TensorDataset(torch.zeros(1)), "crop"), "transform must be callable"),
        (lambda: Augmented(TensorDataset(torch.zeros(1)), random_flip, -1), "seed must be"),
    ],
)
def test_bad_arguments_raise_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def identical_images(n=8, padding=2):
    image = distinct_image(channels=1)
    dataset = TensorDataset(image.expand(n, *image.shape).clone(), torch.arange(n))
    crops = manual_crops(image, padding)
    return dataset, crops


def offsets_of_one_pass(dataset, crops):
    return [offset_of(dataset[i][0], crops) for i in range(len(dataset))]


def test_augmented_keeps_labels_and_varies_across_passes_but_not_across_runs():
    clean, crops = identical_images()
    augmentation = ImageAugmentation(crop_padding=2)
    augmented = Augmented(clean, augmentation, seed=1)
    first, second = offsets_of_one_pass(augmented, crops), offsets_of_one_pass(augmented, crops)
    assert first != second  # a second epoch draws new crops
    rerun = Augmented(clean, augmentation, seed=1)
    assert offsets_of_one_pass(rerun, crops) == first
    other_seed = Augmented(clean, augmentation, seed=2)
    assert offsets_of_one_pass(other_seed, crops) != first
    assert len(augmented) == len(clean)
    assert [augmented[i][1].item() for i in range(len(clean))] == list(range(len(clean)))


def worker_offsets(dataset, crops, loader_seed):
    loader = DataLoader(
        dataset, batch_size=1, num_workers=2, generator=torch.Generator().manual_seed(loader_seed)
    )
    epochs = []
    for _ in range(2):
        epochs.append([offset_of(images[0], crops) for images, _ in loader])
    return epochs


def test_augmented_differs_across_workers_and_epochs_and_repeats_with_the_loader_seed():
    clean, crops = identical_images(n=8)
    augmented = Augmented(clean, ImageAugmentation(crop_padding=2), seed=0)
    augmented[0]  # a generator made in the main process must not be shared by forked workers
    first_epoch, second_epoch = worker_offsets(augmented, crops, loader_seed=5)
    # items alternate between the two workers: each worker's k-th draw must differ
    assert first_epoch[0::2] != first_epoch[1::2]
    assert first_epoch != second_epoch
    assert worker_offsets(augmented, crops, loader_seed=5) == [first_epoch, second_epoch]
