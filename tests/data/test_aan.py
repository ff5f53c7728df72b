import pytest
import torch
from official_formats import AAN_ROWS, write_aan

from neurojoule.data.aan import AANDataset


def byte_tokens(text, length):
    ids = [byte + 1 for byte in text.encode("utf-8")][:length]
    return ids + [0] * (length - len(ids))


def test_pairs_become_two_rows_of_byte_tokens(tmp_path):
    write_aan(tmp_path)
    dataset = AANDataset("train", tmp_path, max_length=20)
    assert len(dataset) == len(AAN_ROWS["train"])
    for index, (label, _, _, text1, text2) in enumerate(AAN_ROWS["train"]):
        pair, got_label = dataset[index]
        assert pair.dtype == torch.long and pair.shape == (2, 20)
        assert pair[0].tolist() == byte_tokens(text1, 20)  # the 50-byte text is cut to 20
        assert pair[1].tolist() == byte_tokens(text2, 20)
        assert got_label == int(label)


def test_eval_and_test_files_and_float_labels(tmp_path):
    write_aan(tmp_path)
    folder = tmp_path / "tsv_data"
    text = (folder / "new_aan_pairs.test.tsv").read_text().replace("1\tT1", "1.0\tT1")
    (folder / "new_aan_pairs.test.tsv").write_text(text)
    assert AANDataset("test", folder).labels.tolist() == [1, 0]
    assert AANDataset("eval", tmp_path)[0][1] == 0


def test_malformed_line_raises_value_error_naming_it(tmp_path):
    write_aan(tmp_path)
    path = tmp_path / "tsv_data" / "new_aan_pairs.eval.tsv"
    path.write_text(path.read_text() + "1\tonly\tthree\n")
    with pytest.raises(ValueError, match=r"eval.tsv:2: expected 5 tab-separated fields"):
        AANDataset("eval", tmp_path)
    path.write_text("maybe\ta\tb\tc\td\n")
    with pytest.raises(ValueError, match=r"eval.tsv:1: .*label 0 or 1"):
        AANDataset("eval", tmp_path)


def test_missing_files_say_where_to_get_them(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"new_aan_pairs.train.tsv.*lra_release"):
        AANDataset("train", tmp_path)
