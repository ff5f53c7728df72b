"""Generated malformed configs fed to the config loaders and to `neurojoule train --set`:
YAML texts and dicts with wrong types, odd nesting, unknown keys, huge, negative and
non-finite numbers. Each ends in a valid config or a one-line ValueError, never another
exception and never a hang (see fuzz_support.py)."""

from __future__ import annotations

import dataclasses
import math
import tempfile
from pathlib import Path

import pytest
import yaml
from fuzzing import Outcomes, check_cli_outcome, fuzz_settings, run_cli
from hypothesis import given
from hypothesis import strategies as st

from neurojoule.train.config import OptimConfig, TrainConfig, config_path, load_config

FIELDS = [f.name for f in dataclasses.fields(TrainConfig)]
OPTIM_FIELDS = [f.name for f in dataclasses.fields(OptimConfig)]
KEYS = st.one_of(
    st.sampled_from(FIELDS),
    st.sampled_from([f"optim.{name}" for name in OPTIM_FIELDS]),
    st.sampled_from(["model_options.d_model", "task_options.seq_len", "optim.lr.x", "epochs"]),
    st.text(st.characters(codec="utf-8"), max_size=12),
)
numbers = st.one_of(
    st.integers(-(2**70), 2**70),
    st.integers(-3, 100),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, 1, -1, 2**31, 2**32, 2**63, 1e308, -0.0, 0.5]),
)
scalars = st.one_of(
    numbers,
    st.booleans(),
    st.none(),
    st.text(max_size=10),
    st.sampled_from(["listops", "spiking-ssm", "auto", "bptt", "ce", "cpu", "digits", "s4d"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(
            st.one_of(st.sampled_from(FIELDS + OPTIM_FIELDS), st.text(max_size=6)),
            inner,
            max_size=4,
        ),
    ),
    max_leaves=12,
)
optim_sections = st.dictionaries(
    st.one_of(st.sampled_from(OPTIM_FIELDS), st.text(max_size=6)), values, max_size=4
)
config_dicts = st.dictionaries(
    st.one_of(st.sampled_from(FIELDS), st.text(max_size=8)),
    st.one_of(values, optim_sections),
    max_size=6,
)
REAL = yaml.safe_load(config_path("listops-cpu").read_text())


@st.composite
def real_configs_changed(draw) -> dict:
    """listops-cpu with a few settings replaced, removed or added."""
    optim = dict(REAL["optim"])
    document = {**REAL, "optim": optim}
    for _ in range(draw(st.integers(0, 2))):
        section = optim if draw(st.booleans()) else document
        key = draw(st.sampled_from(sorted(section))) if draw(st.booleans()) else draw(KEYS)
        if draw(st.booleans()) and key in section:
            del section[key]
        else:
            section[key] = draw(values)
    return document


known_field_dicts = st.dictionaries(
    st.sampled_from(FIELDS), st.one_of(values, optim_sections), max_size=5
)


def _check_valid(config: TrainConfig) -> None:
    """A config that loaded holds values of its fields' types, and rebuilds from its dict."""
    assert isinstance(config.optim, OptimConfig)
    for holder, names in ((config, FIELDS), (config.optim, OPTIM_FIELDS)):
        for name in names:
            value = getattr(holder, name)
            assert not isinstance(value, float) or math.isfinite(value), (name, value)
            assert not isinstance(value, bool), (name, value)
    assert isinstance(config.model_options, dict) and isinstance(config.task_options, dict)
    assert TrainConfig(**config.to_dict()) == config


def _mangled(text: str, data) -> str:
    """The text cut, or with a few characters put in at random places."""
    kind = data.draw(st.sampled_from(["as is", "cut", "insert"]))
    if kind == "cut" and text:
        return text[: data.draw(st.integers(0, len(text) - 1))]
    if kind == "insert":
        for _ in range(data.draw(st.integers(1, 3))):
            where = data.draw(st.integers(0, len(text)))
            text = (
                text[:where]
                + data.draw(
                    st.sampled_from(
                        [
                            ":",
                            "-",
                            "[",
                            "{",
                            "&a",
                            "*a",
                            "\t",
                            "!!python/object:os.system",
                            "\x00",
                            " ",
                            "\n  ",
                        ]
                    )
                )
                + text[where:]
            )
    return text


YAML_OUTCOMES = Outcomes()


@fuzz_settings(250)
@given(
    document=st.one_of(real_configs_changed(), config_dicts, values, st.text(max_size=40)),
    as_text=st.booleans(),
    data=st.data(),
)
def test_generated_yaml_configs_load_or_fail_in_one_line(document, as_text, data):
    if as_text and isinstance(document, str):
        text = document
    else:
        text = yaml.safe_dump(document, allow_unicode=True)
    text = _mangled(text, data)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "config.yaml"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        accepted, result = YAML_OUTCOMES.run(lambda: load_config(path))
    if accepted:
        _check_valid(result)


def test_the_yaml_fuzzing_reached_both_outcomes():
    YAML_OUTCOMES.assert_saw(accepted=3, refused=100)


FIELD_OUTCOMES = Outcomes()


@fuzz_settings(250)
@given(fields=known_field_dicts)
def test_train_config_fields_load_or_fail_in_one_line(fields):
    accepted, result = FIELD_OUTCOMES.run(lambda: TrainConfig(**fields))
    if accepted:
        _check_valid(result)


def test_the_field_fuzzing_reached_both_outcomes():
    FIELD_OUTCOMES.assert_saw(accepted=3, refused=100)


def _override(key: str, value, raw: str | None) -> str:
    text = raw if raw is not None else yaml.safe_dump(value, default_flow_style=True).strip()
    return f"{key}={text.removesuffix('...').strip()}"


overrides = st.builds(_override, KEYS, values, st.one_of(st.none(), st.text(max_size=12)))
fitting_overrides = st.one_of(
    st.integers(1, 10**6).map(lambda n: f"optim.epochs={n}"),
    st.floats(1e-6, 1.0).map(lambda x: f"optim.lr={x!r}"),
    st.integers(0, 2**32 - 1).map(lambda n: f"seed={n}"),
    st.integers(1, 512).map(lambda n: f"model_options.d_model={n}"),
    st.sampled_from(["lif_mode=sltt", "loss=tet", "limit_eval_samples=null", "task=imdb"]),
)
SET_OUTCOMES = Outcomes()


@fuzz_settings(250)
@given(
    items=st.lists(
        st.one_of(fitting_overrides, overrides, st.text(max_size=20)), min_size=1, max_size=3
    )
)
def test_set_overrides_load_or_fail_in_one_line(items):
    accepted, result = SET_OUTCOMES.run(lambda: load_config("listops-cpu", items))
    if accepted:
        _check_valid(result)


def test_the_override_fuzzing_reached_both_outcomes():
    SET_OUTCOMES.assert_saw(accepted=10, refused=100)


@fuzz_settings(120)
@given(items=st.lists(overrides, min_size=1, max_size=3))
def test_train_set_on_the_command_line_trains_or_fails_in_one_line(items):
    import neurojoule.train
    from neurojoule.train.fit import TrainResult

    trained = []

    def fake_train(config, out, **_):
        trained.append(config)
        return TrainResult(Path(out), Path(out) / "best.ckpt", {"test/acc": 0.5}, None)

    argv = ["train", "s4d", "--task", "listops", "--config", "listops-cpu", "--quiet"]
    for item in items:
        argv += ["--set", item]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(neurojoule.train, "train", fake_train)
        patch.setattr(neurojoule.train, "train_lm", fake_train)
        status, out, err = run_cli(argv)
    check_cli_outcome(status, out, err, "train")
    if status == 0:
        (config,) = trained
        _check_valid(config)
        assert out.count("\n") == 2 and out.startswith(f"s4d on {config.task}")
    else:
        assert trained == []
