"""Generated broken checkpoints fed to the checkpoint loaders and to `neurojoule eval`: random
bytes, truncated real checkpoints, a real checkpoint's zip with one member corrupted, and
torch.save of the real checkpoint's dict with keys missing or odd. Each ends in a valid result
or a one-line ValueError, never another exception and never a hang (see fuzz_support.py)."""

from __future__ import annotations

import copy
import io
import tempfile
import zipfile
from collections import Counter
from pathlib import Path

import pytest
import torch
from fuzzing import Outcomes, check_cli_outcome, check_message, fuzz_settings, run_cli
from hypothesis import given
from hypothesis import strategies as st

from neurojoule.train.checkpoints import load_checkpoint, read_checkpoint

TINY = [
    "task_options={min_length: 20, max_length: 60, n_train: 32, n_val: 8, n_test: 8, seq_len: 60}",
    "model_options={d_model: 8, n_layers: 1, d_state: 4}",
    "optim.batch_size=16",
    "optim.epochs=1",
    "lif_mode=bptt",
]


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    """The bytes of a real (tiny) training checkpoint, its dict, and the cache its data is in."""
    from neurojoule.train import train
    from neurojoule.train.config import load_config

    folder = tmp_path_factory.mktemp("fuzz-checkpoints")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NEUROJOULE_CACHE", str(folder / "cache"))
        result = train(load_config("listops-cpu", TINY), folder / "run", progress=False)
    raw = result.tested_checkpoint.read_bytes()
    return Real(raw, torch.load(io.BytesIO(raw), weights_only=True), folder / "cache")


class Real(tuple):
    """(bytes, dict, cache folder) of the real checkpoint, shown briefly in failure reports."""

    def __new__(cls, *items):
        return super().__new__(cls, items)

    def __repr__(self) -> str:
        return f"<a real checkpoint of {len(self[0])} bytes>"


def _written(raw: bytes, folder: str) -> Path:
    path = Path(folder) / "model.ckpt"
    path.write_bytes(raw)
    return path


def _check_loaded(loaded, path: Path) -> None:
    """What load_checkpoint gives holds the file's weights."""
    config, info, model = loaded
    state = torch.load(path, weights_only=True)["state_dict"]
    expected = {k.removeprefix("model."): v for k, v in state.items() if k.startswith("model.")}
    got = model.state_dict()
    # batch norm fills in a missing step count (num_batches_tracked), as for old files
    assert {
        n for n in got.keys() - expected.keys() if not n.endswith("num_batches_tracked")
    } == set()
    assert expected.keys() <= got.keys()
    assert all(torch.equal(got[name], expected[name]) for name in expected)
    assert not model.training


def _load_both(raw: bytes, outcomes: Outcomes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = _written(raw, folder)
        read, _ = outcomes.run(lambda: read_checkpoint(path))
        loaded, result = outcomes.run(lambda: load_checkpoint(path))
        if loaded:
            assert read
            _check_loaded(result, path)


# ---- bytes -------------------------------------------------------------------------------

BYTES = Outcomes()


@fuzz_settings(100)
@given(
    raw=st.one_of(st.binary(max_size=2048), st.binary(max_size=64).map(lambda b: b"PK\x03\x04" + b))
)
def test_random_bytes_are_refused_in_one_line(raw):
    _load_both(raw, BYTES)


TRUNCATED = Outcomes()


@fuzz_settings(60)
@given(fraction=st.floats(0.0, 1.0, exclude_max=True))
def test_truncated_checkpoints_are_refused_in_one_line(real, fraction):
    raw = real[0]
    _load_both(raw[: int(len(raw) * fraction)], TRUNCATED)


def test_bytes_and_truncations_are_all_refused():
    assert BYTES.counts["accepted"] == 0 and BYTES.counts["refused"] >= 200
    assert TRUNCATED.counts["accepted"] == 0 and TRUNCATED.counts["refused"] >= 120


# ---- a real checkpoint's zip, one member corrupted -----------------------------------------

CORRUPTED = Outcomes()


def _member_data_offsets(raw: bytes) -> list[tuple[str, int, int]]:
    """(name, offset, size) of each member's stored bytes in a zip (torch stores them
    uncompressed): after the local header of 30 bytes, the name and the extra field."""
    members = []
    with zipfile.ZipFile(io.BytesIO(raw)) as archive:
        for info in archive.infolist():
            start = info.header_offset
            name_length = int.from_bytes(raw[start + 26 : start + 28], "little")
            extra_length = int.from_bytes(raw[start + 28 : start + 30], "little")
            offset = start + 30 + name_length + extra_length
            members.append((info.filename, offset, info.compress_size))
    return members


@fuzz_settings(80)
@given(data=st.data())
def test_a_corrupted_member_is_refused(real, data):
    """A member's stored bytes changed: the zip's checksum no longer matches, and the file is
    refused (torch.load alone would load the changed weights)."""
    original = real[0]
    raw = bytearray(original)
    name, offset, size = data.draw(st.sampled_from(_member_data_offsets(original)))
    start = offset + data.draw(st.integers(0, size - 1))
    length = data.draw(st.integers(1, min(64, offset + size - start)))
    how = data.draw(st.sampled_from(["flip bytes", "zero a run", "random run"]))
    if how == "flip bytes":
        for position in range(start, start + length):
            raw[position] ^= data.draw(st.integers(1, 255))
    elif how == "zero a run":
        raw[start : start + length] = bytes(length)
    else:
        raw[start : start + length] = data.draw(st.binary(min_size=length, max_size=length))
    with tempfile.TemporaryDirectory() as folder:
        path = _written(bytes(raw), folder)
        if raw == original:  # a run of zeros over zeros, say: the same file
            _check_loaded(load_checkpoint(path), path)
            return
        for load in (read_checkpoint, load_checkpoint):
            with pytest.raises(ValueError) as error:
                load(path)
            check_message(error.value)
            assert str(path) in str(error.value)


ANYWHERE = Outcomes()


@fuzz_settings(60)
@given(
    changes=st.lists(
        st.tuples(st.floats(0, 1, exclude_max=True), st.integers(1, 255)), min_size=1, max_size=4
    )
)
def test_bytes_changed_anywhere_are_refused_or_load_what_they_hold(real, changes):
    """Headers, the central directory, the padding between members: some bytes matter and
    some do not."""
    raw = bytearray(real[0])
    for where, flip in changes:
        raw[int(where * len(raw))] ^= flip
    _load_both(bytes(raw), ANYWHERE)


def test_changed_bytes_were_mostly_refused():
    ANYWHERE.assert_saw(accepted=0, refused=60)


# ---- torch.save of the real dict with keys missing or odd -----------------------------------

ODD_VALUES = st.one_of(
    st.none(),
    st.integers(-5, 2**40),
    st.floats(allow_nan=True),
    st.text(max_size=8),
    st.lists(st.integers(0, 3), max_size=3),
    st.dictionaries(st.text(max_size=4), st.integers(0, 3), max_size=2),
    st.just(torch.zeros(2, 3)),
    st.just(torch.tensor(float("nan"))),
)


def _paths(tree, prefix=()):
    """Every (key path) into the nested dicts of a checkpoint."""
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield (*prefix, key)
            yield from _paths(value, (*prefix, key))


@st.composite
def changed_checkpoints(draw, checkpoint: dict, keep: tuple = ()) -> dict:
    """The checkpoint dict with 1-3 entries removed, replaced by odd values, or (for a
    weight) reshaped, retyped or filled with NaN; and perhaps an unknown key added. Paths
    that start with one in `keep` stay as they are."""
    changed = copy.deepcopy(checkpoint)
    for _ in range(draw(st.integers(1, 3))):
        paths = [
            p
            for p in _paths(changed)
            if p[0] not in ("loops", "callbacks") and not any(p[: len(k)] == k for k in keep)
        ]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = changed
        for key in path[:-1]:
            parent = parent[key]
        value = parent[path[-1]]
        weight = path[0] == "state_dict" and isinstance(value, torch.Tensor)
        how = draw(st.sampled_from(["remove", "odd", "weight"] if weight else ["remove", "odd"]))
        if how == "remove":
            del parent[path[-1]]
        elif how == "odd":
            parent[path[-1]] = draw(ODD_VALUES)
        else:
            parent[path[-1]] = draw(
                st.sampled_from(
                    [
                        value.reshape(-1)[:-1] if value.numel() > 1 else value.reshape(1, 1),
                        value.to(torch.int64),
                        torch.full_like(value, float("nan"))
                        if value.is_floating_point()
                        else value,
                        value.to(torch.float64),
                    ]
                )
            )
    if draw(st.booleans()):
        changed[draw(st.text(max_size=6))] = draw(ODD_VALUES)
    return changed


CHANGED = Outcomes()


@fuzz_settings(120)
@given(data=st.data())
def test_odd_checkpoint_dicts_are_refused_or_load_what_they_hold(real, data):
    changed = data.draw(changed_checkpoints(real[1]))
    buffer = io.BytesIO()
    torch.save(changed, buffer)
    _load_both(buffer.getvalue(), CHANGED)


def test_odd_checkpoint_dicts_reached_both_outcomes():
    CHANGED.assert_saw(accepted=10, refused=50)


# ---- neurojoule eval FILE ------------------------------------------------------------------


@fuzz_settings(30, deadline_ms=30_000)
@given(data=st.data())
def test_eval_of_a_broken_checkpoint_reports_or_fails_in_one_line(real, data):
    raw, checkpoint, cache = real
    kind = data.draw(st.sampled_from(["as written", "bytes", "truncated", "changed"]))
    if kind == "as written":
        content = raw
    elif kind == "bytes":
        content = data.draw(st.binary(max_size=512))
    elif kind == "truncated":
        content = raw[: data.draw(st.integers(0, len(raw) - 1))]
    else:
        buffer = io.BytesIO()
        # the task options stay: without them the task is the published ListOps, a valid
        # config whose data takes minutes to generate
        keep = (("hyper_parameters", "config", "task_options"),)
        torch.save(data.draw(changed_checkpoints(checkpoint, keep)), buffer)
        content = buffer.getvalue()
    with tempfile.TemporaryDirectory() as folder, pytest.MonkeyPatch.context() as patch:
        patch.setenv("NEUROJOULE_CACHE", str(cache))
        status, out, err = run_cli(["eval", str(_written(content, folder)), "--limit", "4"])
    check_cli_outcome(status, out, err, "eval")
    EVALUATED[status] += 1
    if status == 0:
        assert "accuracy" in out
    elif kind == "as written":
        raise AssertionError(f"the real checkpoint did not evaluate: {err}")


EVALUATED: Counter[int] = Counter()


def test_eval_reached_both_outcomes():
    assert EVALUATED[0] >= 1 and EVALUATED[2] >= 10, EVALUATED


def test_eval_of_the_real_checkpoint_reports(real, tmp_path, monkeypatch):
    monkeypatch.setenv("NEUROJOULE_CACHE", str(real[2]))
    status, out, err = run_cli(["eval", str(_written(real[0], str(tmp_path))), "--limit", "4"])
    assert status == 0, err
    assert out.startswith("spiking-ssm on listops (test, 4 samples, bptt LIF): accuracy ")
