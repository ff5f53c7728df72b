"""Generated malformed files fed to the loaders of ListOps TSV, IDX and CIFAR pickles: each
must load to what an independent reading of the format gives, or raise a one-line ValueError
naming the file; never another exception, never a hang (see fuzzing.py). IMDB, AAN,
Pathfinder and WikiText: test_fuzz_lra_loaders.py."""

from __future__ import annotations

import gzip
import math
import pickle
import struct
from itertools import chain

import numpy as np
import pytest
from fuzzing import Outcomes, fuzz_settings
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from official_formats import cifar10_batches, write_idx

from neurojoule.data import listops_reader
from neurojoule.data.cifar import read_cifar_batch
from neurojoule.data.fashion_mnist import load_fashion_mnist
from neurojoule.data.idx import read_idx
from neurojoule.data.listops import VOCAB, listops_source
from neurojoule.data.listops_reader import encode_listops_file, read_listops_tsv

# ---- ListOps TSV ---------------------------------------------------------------------------

OPERATORS = ("[MIN", "[MAX", "[MED", "[SM")
expressions = st.recursive(
    st.sampled_from("0123456789").map(lambda digit: [digit]),
    lambda inner: st.tuples(
        st.sampled_from(OPERATORS), st.lists(inner, min_size=2, max_size=4)
    ).map(lambda node: [node[0], *chain.from_iterable(node[1]), "]"]),
    max_leaves=12,
)
listops_rows = st.lists(st.tuples(expressions, st.integers(0, 9)), min_size=1, max_size=5)
no_newline = st.binary(min_size=1, max_size=4).filter(lambda b: b"\n" not in b)
odd_words = st.sampled_from(
    [b"[MIN", b"]", b"(", b")", b"7", b"10", b"[min", b"[MI", b"MAX", b"x", b"\xff", b"[SM[SM"]
    + [b"3)", b"((", "\u0663".encode(), b"[MAXX", b"]]"]
)


def reference_listops(raw: bytes) -> list[tuple[list[int], int]] | None:
    """(ids, label) rows from the format's description (listops_reader's docstring), written
    anew: UTF-8; LF or CR LF row ends; the header; 'source TAB digit'; whitespace-separated
    words, ( ) dropped and balanced; the rest one complete expression. None: not the format."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    lines = [line[:-1] if line.endswith("\r") else line for line in lines]
    if len(lines) < 2 or lines[0] != "Source\tTarget":
        return None
    rows = []
    for line in lines[1:]:
        fields = line.split("\t")
        if len(fields) != 2 or len(fields[1]) != 1 or fields[1] not in "0123456789":
            return None
        words = fields[0].split()
        depth = 0
        for word in words:
            depth += {"(": 1, ")": -1}.get(word, 0)
            if depth < 0:
                return None
        tokens = [word for word in words if word not in ("(", ")")]
        if depth or not all(token in VOCAB for token in tokens) or not one_expression(tokens):
            return None
        rows.append(([VOCAB[token] for token in tokens], int(fields[1])))
    return rows


def one_expression(tokens: list[str]) -> bool:
    arguments: list[int] = []  # of each open operator
    for index, token in enumerate(tokens):
        if index and not arguments:
            return False  # more after a complete expression
        if token == "]":
            if not arguments or arguments.pop() == 0:
                return False
            continue
        if arguments:
            arguments[-1] += 1
        if token in OPERATORS:
            arguments.append(0)
    return bool(tokens) and not arguments


def _row(data, lines):
    return data.draw(st.integers(1, len(lines) - 1)) if len(lines) > 1 else 0


def _words_of(data, lines, edit):
    row = _row(data, lines)
    source, tab, label = lines[row].rpartition(b"\t")
    words = source.split(b" ") if tab else [lines[row]]
    edit(words, data.draw(st.integers(0, len(words))))
    lines[row] = b" ".join(words) + tab + label if tab else b" ".join(words)


def m_header(data, lines):
    odd = [b"Source\tTarget\t", b"source\ttarget", b"Source Target", b"", b"Target\tSource"]
    lines[0] = data.draw(st.sampled_from([*odd, b"\xef\xbb\xbfSource\tTarget"]) | no_newline)


def m_fields(data, lines):
    row = _row(data, lines)
    edits = [lambda r: r.replace(b"\t", b""), lambda r: r + b"\tx", lambda r: b"\t" + r]
    lines[row] = data.draw(st.sampled_from(edits))(lines[row])


def m_label(data, lines):
    row = _row(data, lines)
    odd = [b"10", b"-1", b"a", b"", b" 3", b"3 ", "\u0663".encode(), b"1.0", b"+1", b"3\r"]
    label = data.draw(st.sampled_from(odd) | no_newline)
    lines[row] = lines[row].rpartition(b"\t")[0] + b"\t" + label


def m_insert_word(data, lines):
    word = data.draw(odd_words | no_newline)
    _words_of(data, lines, lambda words, at: words.insert(at, word))


def m_delete_word(data, lines):
    _words_of(data, lines, lambda words, at: words.pop(min(at, len(words) - 1)))


def m_space(data, lines):
    space = data.draw(st.sampled_from([b"  ", b"\t", b"\x0b", "\u00a0".encode(), b"\r", b""]))
    row = _row(data, lines)
    lines[row] = (
        lines[row].replace(b" ", space, 1) if data.draw(st.booleans()) else space + lines[row]
    )


def m_blank_line(data, lines):
    lines.insert(data.draw(st.integers(1, len(lines))), data.draw(st.sampled_from([b"", b" "])))


def m_huge_line(data, lines):
    count = data.draw(st.integers(10_000, 60_000))
    closed = data.draw(st.booleans())
    lines.append(b"( [SM " + b"1 " * count + (b"] )" if closed else b"") + b"\t4")


def m_drop_rows(data, lines):
    del lines[data.draw(st.integers(0, 1)) :]


ROW_MUTATIONS = [m_header, m_fields, m_label, m_insert_word, m_delete_word, m_space]
ROW_MUTATIONS += [m_blank_line, m_huge_line, m_drop_rows]


def draw_listops_file(data) -> tuple[bytes, bool]:
    """(file bytes, whether a mutation was applied)."""
    rows = data.draw(listops_rows)
    lines = [b"Source\tTarget"] + [f"{listops_source(t)}\t{y}".encode() for t, y in rows]
    mutations = data.draw(st.integers(0, 3))
    for _ in range(mutations):
        if lines:  # dropping rows can leave nothing to edit
            data.draw(st.sampled_from(ROW_MUTATIONS))(data, lines)
    ending = data.draw(st.sampled_from([b"\n", b"\r\n"]))
    raw = ending.join(lines) + data.draw(st.sampled_from([ending, b""]))
    if data.draw(st.integers(0, 4)) == 0:  # a byte-level change: insertion or truncation
        at = data.draw(st.integers(0, len(raw)))
        raw = raw[:at] + data.draw(st.binary(max_size=3))
        mutations += 1
    return raw, mutations > 0


def test_listops_files_load_as_the_format_reads_or_fail_in_one_line(tmp_path):
    path = tmp_path / "basic_train.tsv"
    outcomes, vectorised = Outcomes(), []

    @fuzz_settings(300)
    @given(st.data())
    def check(data):
        raw, mutated = draw_listops_file(data)
        path.write_bytes(raw)
        expected = reference_listops(raw)
        loaded, result = outcomes.run(lambda: encode_listops_file(path), str(path))
        assert loaded == (expected is not None)
        read, rows = outcomes.run(lambda: read_listops_tsv(path), str(path))
        assert read == loaded
        if not loaded:
            return
        ids, lengths, labels = result
        assert ids.tolist() == [i for row_ids, _ in expected for i in row_ids]
        assert lengths.tolist() == [len(row_ids) for row_ids, _ in expected]
        assert labels.tolist() == [label for _, label in expected]
        assert [[VOCAB[t] for t in tokens] for tokens, _ in rows] == [r for r, _ in expected]
        if not mutated:  # the writers' form: the vectorised path must vouch for it
            body = raw.partition(b"\n")[2]
            vectorised.append(
                listops_reader._encode_fast(body if body.endswith(b"\n") else body + b"\n")
            )
            assert vectorised[-1] is not None

    check()
    outcomes.assert_saw(accepted=100, refused=150)
    assert len(vectorised) >= 20


# ---- IDX and Fashion-MNIST -------------------------------------------------------------------


def reference_idx(raw: bytes, shape: tuple) -> np.ndarray | None:
    """The array of an IDX file as the MNIST page describes the format, or None."""
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except Exception:
            return None
    n = len(shape)
    if len(raw) < 4 + 4 * n or raw[:4] != bytes([0, 0, 8, n]):
        return None
    dims = struct.unpack(f">{n}I", raw[4 : 4 + 4 * n])
    if any(want is not None and dim != want for dim, want in zip(dims, shape, strict=True)):
        return None
    if len(raw) - 4 - 4 * n != math.prod(dims):
        return None
    return np.frombuffer(raw[4 + 4 * n :], dtype=np.uint8).reshape(dims)


def mutate_bytes(data, raw: bytes) -> bytes:
    """One of: unchanged, a byte set, a 32-bit word set (an IDX dimension), bytes inserted,
    the file cut, gzip-compressed (and perhaps cut)."""
    kind = data.draw(st.sampled_from(["none", "byte", "word", "insert", "cut", "gzip"]))
    at = data.draw(st.integers(0, max(len(raw) - 1, 0)))
    if kind == "byte" and raw:
        return raw[:at] + bytes([data.draw(st.integers(0, 255))]) + raw[at + 1 :]
    if kind == "word":
        word = data.draw(st.sampled_from([0, 1, 28, 2**31, 2**32 - 1]) | st.integers(0, 2**32 - 1))
        at = data.draw(st.sampled_from([0, 4, 8, 12]))
        return raw[:at] + word.to_bytes(4, "big") + raw[at + 4 :]
    if kind == "insert":
        return raw[:at] + data.draw(st.binary(min_size=1, max_size=8)) + raw[at:]
    if kind == "cut":
        return raw[:at]
    if kind == "gzip":
        packed = gzip.compress(raw)
        return packed[: data.draw(st.integers(0, len(packed)))]
    return raw


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.tobytes()


def test_idx_files_load_as_the_format_reads_or_fail_in_one_line(tmp_path):
    path = tmp_path / "images-idx3-ubyte"
    outcomes = Outcomes()

    @fuzz_settings(200)
    @given(st.data(), st.sampled_from([(None,), (None, 4, 3)]), st.integers(0, 3))
    def check(data, shape, count):
        array = data.draw(hnp.arrays(np.uint8, (count, *shape[1:])))
        raw = mutate_bytes(data, idx_bytes(array))
        path.write_bytes(raw)
        expected = reference_idx(raw, shape)
        loaded, result = outcomes.run(lambda: read_idx(path, shape), str(path))
        assert loaded == (expected is not None)
        if loaded:
            np.testing.assert_array_equal(result, expected)

    check()
    outcomes.assert_saw(accepted=40, refused=80)


def test_fashion_mnist_files_load_or_fail_in_one_line(tmp_path):
    raw_folder = tmp_path / "FashionMNIST" / "raw"
    raw_folder.mkdir(parents=True)
    outcomes = Outcomes()

    @fuzz_settings(60)
    @given(st.data(), st.lists(st.integers(0, 12), max_size=3))
    def check(data, labels):
        images = np.full((len(labels), 28, 28), 7, dtype=np.uint8)
        files = {
            "train-images-idx3-ubyte": idx_bytes(images),
            "train-labels-idx1-ubyte": idx_bytes(np.array(labels, dtype=np.uint8)),
        }
        if data.draw(st.booleans()):
            broken = data.draw(st.sampled_from(sorted(files)))
            files[broken] = mutate_bytes(data, files[broken])
        for name, raw in files.items():
            (raw_folder / name).write_bytes(raw)
        want_images = reference_idx(files["train-images-idx3-ubyte"], (None, 28, 28))
        want_labels = reference_idx(files["train-labels-idx1-ubyte"], (None,))
        valid = want_images is not None and want_labels is not None
        valid = valid and 0 < len(want_images) == len(want_labels) and np.all(want_labels < 10)
        loaded, result = outcomes.run(lambda: load_fashion_mnist("train", tmp_path), "-ubyte")
        assert loaded == valid
        if loaded:
            np.testing.assert_array_equal(result[0], want_images)
            np.testing.assert_array_equal(result[1], want_labels)

    check()
    outcomes.assert_saw(accepted=5, refused=20)


# ---- CIFAR pickles ---------------------------------------------------------------------------

images = st.integers(0, 3).map(
    lambda n: np.random.default_rng(n).integers(0, 256, (n, 3072), dtype=np.uint8)
)
odd_arrays = hnp.arrays(
    st.sampled_from([np.uint8, np.int16, np.float32, np.int64]),
    hnp.array_shapes(min_dims=0, max_dims=3, max_side=4),
)
label_values = st.one_of(
    st.lists(st.integers(-2, 12), max_size=4),
    st.lists(st.integers(0, 9), min_size=1, max_size=3).map(tuple),
    st.lists(st.integers(-(2**70), 2**70), max_size=3),
    st.lists(st.floats(allow_nan=True) | st.booleans() | st.text(max_size=2), max_size=3),
    hnp.arrays(
        st.sampled_from([np.int64, np.uint8, np.float32]),
        st.integers(0, 4),
        elements=st.integers(0, 12),
    ),
    odd_arrays,
    st.none()
    | st.integers()
    | st.text(max_size=3)
    | st.dictionaries(st.integers(), st.integers(), max_size=2),
)
data_values = images | odd_arrays | st.lists(st.lists(st.integers(0, 255), max_size=3), max_size=3)
odd_keys = st.dictionaries(
    st.integers() | st.text(max_size=3) | st.binary(max_size=3), st.integers(), max_size=2
)


@st.composite
def pickled_objects(draw):
    """(object, its pickle): a batch as published, one with a field replaced or missing, one
    of random fields, or not a dict at all; keys as bytes (the Python 2 originals) or str;
    any pickle protocol."""
    kind = draw(st.sampled_from(["published", "one field off", "random", "not a dict"]))
    count = draw(st.integers(1, 3))
    fields = {
        "data": np.random.default_rng(count).integers(0, 256, (count, 3072), dtype=np.uint8),
        "labels": draw(
            st.lists(st.integers(0, 9), min_size=count, max_size=count).flatmap(
                lambda v: st.sampled_from([v, tuple(v), np.array(v, dtype=np.int64)])
            )
        ),
    }
    if kind == "one field off":
        key = draw(st.sampled_from(sorted(fields)))
        del fields[key]
        if draw(st.booleans()):
            fields[key] = draw(data_values if key == "data" else label_values)
    if kind == "random":
        fields = draw(
            st.fixed_dictionaries({}, optional={"data": data_values, "labels": label_values})
        )
    as_bytes = draw(st.booleans())
    content = {(k.encode() if as_bytes else k): v for k, v in fields.items()}
    if kind != "published":
        content = {**draw(odd_keys), **content}
    if kind == "not a dict":
        content = draw(st.lists(st.integers(), max_size=2) | st.none() | odd_arrays)
    return content, pickle.dumps(content, protocol=draw(st.integers(0, 5)))


def reference_batch(content) -> tuple[np.ndarray, list[int]] | None:
    """(data, labels) of a CIFAR-10 batch as the CIFAR page describes it, or None."""
    if not isinstance(content, dict):
        return None
    batch = {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in content.items()}
    data, labels = batch.get("data"), batch.get("labels")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.shape[1:] != (3072,):
        return None
    if isinstance(labels, np.ndarray):
        labels = labels.tolist() if labels.ndim == 1 and labels.dtype.kind in "iu" else None
    if not isinstance(labels, (list, tuple)) or not 0 < len(labels) == len(data):
        return None
    if not all(type(v) is int and 0 <= v < 10 for v in labels):
        return None
    return data, list(labels)


def test_cifar_pickles_of_any_content_load_or_fail_in_one_line(tmp_path):
    path = tmp_path / "data_batch_1"
    outcomes = Outcomes()

    @fuzz_settings(200)
    @given(pickled_objects())
    def check(drawn):
        content, raw = drawn
        path.write_bytes(raw)
        expected = reference_batch(content)
        loaded, result = outcomes.run(lambda: read_cifar_batch(path), str(path))
        assert loaded == (expected is not None)
        if loaded:
            np.testing.assert_array_equal(result[0].reshape(-1, 3072), expected[0])
            assert result[1].dtype == np.int64 and result[1].tolist() == expected[1]

    check()
    outcomes.assert_saw(accepted=10, refused=100)


def test_damaged_cifar_pickles_load_sound_or_fail_in_one_line(tmp_path):
    path = tmp_path / "test_batch"
    batch = cifar10_batches(n_per_batch=1, n_test=2)["test_batch"]
    valid = pickle.dumps({k.encode(): v for k, v in batch.items()}, protocol=2)
    outcomes = Outcomes()

    @fuzz_settings(150)
    @given(st.data())
    def check(data):
        raw = valid
        for _ in range(data.draw(st.integers(1, 3))):
            raw = mutate_bytes(data, raw)
        path.write_bytes(raw)
        loaded, result = outcomes.run(lambda: read_cifar_batch(path), str(path))
        if loaded:  # whatever survived the damage is still a sound batch
            images, labels = result
            assert images.dtype == np.uint8 and images.shape[1:] == (3, 32, 32)
            assert labels.dtype == np.int64 and labels.shape == (len(images),) and len(images)
            assert labels.min() >= 0 and labels.max() < 10

    check()
    outcomes.assert_saw(accepted=10, refused=40)


def test_pickles_never_run_code_and_name_what_they_wanted(tmp_path):
    path = tmp_path / "batch"
    for module, name in [("os", "system"), ("builtins", "eval"), ("numpy", "load")]:
        path.write_bytes(f"c{module}\n{name}\n(S'echo x'\ntR.".encode())
        with pytest.raises(ValueError, match=rf"refusing to load {module}\.{name}"):
            read_cifar_batch(path)


def test_written_idx_files_match_the_reference_reader(tmp_path):
    # the reference reader itself, on files of the writer the other data tests use
    for compress in (False, True):
        array = np.arange(24, dtype=np.uint8).reshape(2, 4, 3)
        write_idx(tmp_path / "x", array, compress=compress)
        np.testing.assert_array_equal(
            reference_idx((tmp_path / "x").read_bytes(), (None, 4, 3)), array
        )
