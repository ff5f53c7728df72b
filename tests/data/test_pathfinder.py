import pytest
import torch
from official_formats import write_pathfinder

from neurojoule.data.pathfinder import PathfinderDataset, read_pathfinder_metadata


def test_images_become_row_by_row_sequences_with_labels(tmp_path):
    examples = write_pathfinder(tmp_path, difficulty="curv_baseline")
    dataset = PathfinderDataset(tmp_path, 32, "curv_baseline")
    assert len(dataset) == len(examples) == 10
    for index in (0, 6, 9):
        sequence, label = dataset[index]
        pixels, expected_label = examples[index]
        assert sequence.shape == (1024, 1) and sequence.dtype == torch.float32
        assert sequence[33, 0].item() == pytest.approx(pixels[1, 1] / 255)
        assert torch.allclose(sequence[:, 0], torch.from_numpy(pixels).flatten().float() / 255)
        assert label == expected_label


def test_path_x_resolution_and_lra_release_folder(tmp_path):
    examples = write_pathfinder(tmp_path / "lra_release", resolution=128, n=2)
    dataset = PathfinderDataset(tmp_path, resolution=128, normalize=(0.5, 0.5))
    sequence, label = dataset[1]
    assert sequence.shape == (16384, 1)
    expected = (torch.from_numpy(examples[1][0]).flatten().float() / 255 - 0.5) / 0.5
    assert torch.allclose(sequence[:, 0], expected) and label == examples[1][1]


def test_metadata_files_are_read_in_numeric_order(tmp_path):
    write_pathfinder(tmp_path, n=4)
    folder = tmp_path / "pathfinder32" / "curv_contour_length_14"
    (folder / "metadata" / "10.npy").write_text("imgs/0 sample_0.png 0 1\n")
    (folder / "metadata" / "2.npy").write_text("imgs/1 sample_1.png 0 0\n")
    names = [(p.parent.name, p.name, y) for p, y in read_pathfinder_metadata(folder)]
    assert names[-2:] == [("1", "sample_1.png", 0), ("0", "sample_0.png", 1)]


def test_wrong_image_size_and_bad_metadata_raise_value_error(tmp_path):
    write_pathfinder(tmp_path, n=2)
    (tmp_path / "pathfinder32").rename(tmp_path / "pathfinder64")  # 32x32 images posing as 64
    with pytest.raises(
        ValueError, match=r"sample_0.png: expected a \(64, 64\) image, got \(32, 32"
    ):
        PathfinderDataset(tmp_path, 64)[0]
    folder = tmp_path / "pathfinder64" / "curv_contour_length_14"
    (folder / "metadata" / "0.npy").write_text("imgs/0 sample_0.png 0\n")
    with pytest.raises(ValueError, match=r"0.npy:1: expected space-separated fields"):
        PathfinderDataset(tmp_path, 64)


def test_unreadable_image_raises_value_error(tmp_path):
    write_pathfinder(tmp_path, n=2)
    image = tmp_path / "pathfinder32" / "curv_contour_length_14" / "imgs" / "1" / "sample_0.png"
    image.write_bytes(b"not a png")
    with pytest.raises(ValueError, match=r"sample_0.png: expected a PNG image"):
        PathfinderDataset(tmp_path)[1]


def test_missing_files_say_where_to_get_them(tmp_path):
    with pytest.raises(
        FileNotFoundError, match=r"pathfinder32/curv_contour_length_14.*lra_release"
    ):
        PathfinderDataset(tmp_path)
