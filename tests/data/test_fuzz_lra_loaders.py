"""Generated broken files fed to the IMDB, AAN, Pathfinder and WikiText-103 loaders: each
must give what an independent reading of the format gives, or raise a one-line ValueError
naming the file (see fuzzing.py and test_fuzz_loaders.py)."""

from __future__ import annotations

import io
import shutil
import struct
import zlib

import numpy as np
import torch
from fuzzing import Outcomes, fuzz_settings
from hypothesis import given
from hypothesis import strategies as st
from official_formats import AAN_ROWS, write_pathfinder
from PIL import Image

from neurojoule.data import lm_task, wikitext103
from neurojoule.data.aan import AANDataset
from neurojoule.data.imdb import IMDBDataset
from neurojoule.data.pathfinder import PathfinderDataset

LENGTHS = st.integers(1, 40) | st.sampled_from([0, -3, None, "64", 2.5, True])


def reference_byte_ids(text: bytes, length: int) -> list[int]:
    ids = [byte + 1 for byte in text[:length]]
    return ids + [0] * (length - len(ids))


def valid_length(length) -> bool:
    return type(length) is int and length >= 1


# ---- IMDB -------------------------------------------------------------------------------------


def test_imdb_reviews_of_any_bytes_load_or_fail_in_one_line(tmp_path):
    outcomes = Outcomes()

    @fuzz_settings(40)
    @given(
        st.lists(st.binary(max_size=60), max_size=3),
        st.lists(st.binary(max_size=60), max_size=3),
        LENGTHS,
    )
    def check(positive, negative, length):
        root = tmp_path / "imdb"
        shutil.rmtree(root, ignore_errors=True)
        for label, texts in (("pos", positive), ("neg", negative)):
            for split in ("train", "test"):
                (root / "aclImdb" / split / label).mkdir(parents=True)
            for index, text in enumerate(texts):
                (root / "aclImdb" / "train" / label / f"{index}_7.txt").write_bytes(text)
        expected = [(t, 0) for t in negative] + [(t, 1) for t in positive]
        loaded, dataset = outcomes.run(lambda: IMDBDataset("train", root, length), "")
        assert loaded == (valid_length(length) and bool(expected))
        if loaded:
            for index, (text, label) in enumerate(expected):
                ids, got = dataset[index]
                assert ids.tolist() == reference_byte_ids(text, length) and got == label

    check()
    outcomes.assert_saw(accepted=10, refused=10)


# ---- AAN --------------------------------------------------------------------------------------


def reference_aan(raw: bytes) -> list[tuple[bytes, bytes, int]] | None:
    """(text1, text2, label) of the rows: 5 tab-separated fields, the label a number equal to
    0 or 1 (the LRA pipeline reads it as a float); blank lines skipped; None if none or broken."""
    rows = []
    for line in raw.split(b"\n"):
        if not line.strip():
            continue
        fields = line.rstrip(b"\r").split(b"\t")
        try:
            label = float(fields[0].decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            return None
        if len(fields) != 5 or label not in (0.0, 1.0):
            return None
        rows.append((fields[3], fields[4], int(label)))
    return rows or None


@st.composite
def aan_files(draw):
    lines = [b"\t".join(field.encode() for field in row) for row in AAN_ROWS["train"]]
    for _ in range(draw(st.integers(0, 3))):
        if not lines:
            break
        row = draw(st.integers(0, len(lines) - 1))
        kind = draw(st.sampled_from(["label", "fields", "bytes", "blank", "drop"]))
        if kind == "label":
            odd = [b"2", b"", b"nan", b"1.0", b"0.0", b"-0", b"yes", b"\xff", b"1e0", b" 1"]
            label = draw(
                st.sampled_from(odd) | st.binary(max_size=3).filter(lambda b: b"\n" not in b)
            )
            lines[row] = label + b"\t" + lines[row].partition(b"\t")[2]
        elif kind == "fields":
            lines[row] = draw(
                st.sampled_from([lines[row] + b"\textra", lines[row].rpartition(b"\t")[0]])
            )
        elif kind == "bytes":
            at = draw(st.integers(0, len(lines[row])))
            lines[row] = lines[row][:at] + draw(st.binary(min_size=1, max_size=3)) + lines[row][at:]
        elif kind == "blank":
            lines.insert(row, draw(st.sampled_from([b"", b"  ", b"\t\t"])))
        else:
            del lines[row:]
    ending = draw(st.sampled_from([b"\n", b"\r\n"]))
    return b"".join(line + ending for line in lines)


def test_aan_pair_files_load_or_fail_in_one_line(tmp_path):
    path = tmp_path / "new_aan_pairs.train.tsv"
    outcomes = Outcomes()

    @fuzz_settings(120)
    @given(aan_files(), LENGTHS)
    def check(raw, length):
        path.write_bytes(raw)
        expected = reference_aan(raw)
        loaded, dataset = outcomes.run(lambda: AANDataset("train", tmp_path, length), "")
        assert loaded == (expected is not None and valid_length(length))
        if loaded:
            assert len(dataset) == len(expected)
            for index, (first, second, label) in enumerate(expected):
                pair, got = dataset[index]
                want = [reference_byte_ids(first, length), reference_byte_ids(second, length)]
                assert pair.tolist() == want and got == label

    check()
    outcomes.assert_saw(accepted=20, refused=30)


# ---- Pathfinder -------------------------------------------------------------------------------


def huge_png(side: int) -> bytes:
    """A PNG header claiming side x side pixels, with almost no data after it."""
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    chunk = b"IHDR" + header
    return (
        b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk))
    )


def image_bytes(pixels: np.ndarray, form: str) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(out, format=form)
    return out.getvalue()


@st.composite
def pathfinder_damage(draw):
    """(where, bytes): the metadata file or image 0 replaced by damaged content."""
    where = draw(st.sampled_from(["metadata", "image"]))
    if where == "metadata":
        good = b"imgs/0 sample_0.png 0 1\nimgs/0 sample_1.png 1 0\n"
        choices = [
            good,
            b"",
            b"\n\n",
            b"imgs/0 sample_0.png 0\n",
            b"imgs/0 sample_0.png 0 2\n",
            b"imgs/0 missing.png 0 1\n",
            b"/etc sample_0.png 0 1\n",
            good.replace(b"0 1", b"0 \xff1"),
            good.replace(b" ", b"\t"),
            good.replace(b"\n", b"\r\n"),
        ]
        return where, draw(st.sampled_from(choices) | st.binary(max_size=40))
    pixels = np.full((32, 32), 9, dtype=np.uint8)
    png = image_bytes(pixels, "PNG")
    cut = draw(st.integers(0, len(png)))
    choices = [
        png,
        png[:cut],
        png[:cut] + b"\x00" * 8 + png[cut + 8 :],
        image_bytes(np.zeros((16, 32), np.uint8), "PNG"),
        image_bytes(pixels, "BMP"),
        huge_png(100_000),
        huge_png(0),
        b"",
    ]
    return where, draw(st.sampled_from(choices) | st.binary(max_size=40))


def reference_pathfinder_image(path) -> np.ndarray | None:
    try:
        with Image.open(path) as image:
            pixels = np.array(image.convert("L"))
    except Exception:
        return None
    return pixels if pixels.shape == (32, 32) else None


def test_pathfinder_files_load_or_fail_in_one_line(tmp_path):
    write_pathfinder(tmp_path, n=4)
    folder = tmp_path / "pathfinder32" / "curv_contour_length_14"
    metadata, image = folder / "metadata" / "0.npy", folder / "imgs" / "0" / "sample_0.png"
    (folder / "metadata" / "1.npy").unlink()
    originals = {metadata: metadata.read_bytes(), image: image.read_bytes()}
    outcomes = Outcomes()

    @fuzz_settings(80)
    @given(pathfinder_damage())
    def check(damage):
        for path, raw in originals.items():
            path.write_bytes(raw)
        target = metadata if damage[0] == "metadata" else image
        target.write_bytes(damage[1])
        loaded, dataset = outcomes.run(lambda: PathfinderDataset(tmp_path), "metadata")
        if not loaded:
            return
        for index, (path, label) in enumerate(dataset.examples):
            expected = reference_pathfinder_image(path) if path.is_file() else None
            read, item = outcomes.run(lambda index=index: dataset[index], str(path))
            assert read == (expected is not None)
            if read:
                assert torch.equal(item[0][:, 0], torch.from_numpy(expected).flatten() / 255.0)
                assert item[1] == label

    check()
    outcomes.assert_saw(accepted=20, refused=20)


# ---- WikiText-103 -----------------------------------------------------------------------------

WORDS = st.sampled_from(["the", "cat", "<unk>", "<eos>", "=", "@-@", "é"])
SPACES = st.sampled_from([" ", "  ", "\t", "\n", "\r\n", "\r", "\u00a0", "\x0c"])
clean_text = st.lists(WORDS | SPACES, max_size=12).map(lambda parts: "".join(parts).encode())
wiki_file = st.one_of(
    clean_text,
    clean_text,
    clean_text,
    clean_text.map(lambda text: text + b" <pad>"),  # the padding token is reserved
    st.binary(max_size=12),
)


def reference_wikitext(raw: bytes) -> list[str] | None:
    """Tokens of a release file: universal newlines, whitespace-split words, <eos> after every
    line; None when not UTF-8 or holding the padding token."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if lines[-1] == "":
        lines.pop()
    tokens = [token for line in lines for token in [*line.split(), "<eos>"]]
    return None if "<pad>" in tokens else tokens


def test_wikitext_files_load_or_fail_in_one_line(tmp_path, cache):
    folder = tmp_path / "wikitext-103"
    folder.mkdir()
    outcomes = Outcomes()

    @fuzz_settings(80)
    @given(st.tuples(wiki_file, wiki_file, wiki_file), st.integers(1, 8))
    def check(raws, seq_len):
        for split, raw in zip(("train", "valid", "test"), raws, strict=True):
            (folder / f"wiki.{split}.tokens").write_bytes(raw)
        expected = [reference_wikitext(raw) for raw in raws]
        loaded, corpus = outcomes.run(lambda: wikitext103(tmp_path), "wiki.")
        assert loaded == all(tokens is not None for tokens in expected)
        if not loaded:
            return
        known = set(expected[0]) | {"<unk>"}
        for split, tokens in zip(("train", "val", "test"), expected, strict=True):
            want = [token if token in known else "<unk>" for token in tokens]
            assert corpus.vocabulary.decode(corpus.splits[split]) == want
        made, splits = outcomes.run(
            lambda: lm_task("wikitext-103", tmp_path, seq_len=seq_len), "split"
        )
        assert made == all(len(tokens) >= 2 for tokens in expected)
        if made:  # the first training window starts the training stream
            inputs, _ = splits[0][0]
            shown = min(seq_len, len(expected[0]))
            assert corpus.vocabulary.decode(inputs[:shown]) == expected[0][:shown]

    check()
    outcomes.assert_saw(accepted=30, refused=20)
