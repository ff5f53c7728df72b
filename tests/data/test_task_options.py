"""Task options as users give them (YAML configs, --set task_options.x=...): checked into
one-line ValueErrors that name the option, the expected type and what came; empty splits and
non-finite inputs refused. Generated option dicts for listops and fashion-mnist too."""

from __future__ import annotations

import inspect
import math
from importlib import resources

import pytest
import torch
import yaml
from fuzzing import Outcomes, check_message, fuzz_settings
from hypothesis import given
from hypothesis import strategies as st
from official_formats import write_fashion_torchvision

from neurojoule.data import (
    LM_TASKS,
    TASKS,
    FashionMNISTDataset,
    classification_task,
    listops,
    load_digits_images,
)
from neurojoule.data.tasks import check_task_options

CONFIGS = sorted((resources.files("neurojoule") / "configs").glob("*.yaml"))


@pytest.mark.parametrize("config", CONFIGS, ids=lambda path: path.stem)
def test_the_shipped_configs_options_pass(config):
    values = yaml.safe_load(config.read_text())
    options = values.get("task_options", {})
    checked = check_task_options(values["task"], options)
    assert {key: as_lists(value) for key, value in checked.items()} == options


def as_lists(value):
    """YAML's form of a checked value: tuples (normalize, per channel too) back to lists."""
    return [as_lists(v) for v in value] if isinstance(value, tuple) else value


@pytest.mark.parametrize("name", [*TASKS, *LM_TASKS])
def test_every_option_of_every_task_has_a_checked_kind_that_takes_its_default(name):
    build = TASKS.get(name) or LM_TASKS[name]
    defaults = {
        p.name: p.default for p in inspect.signature(build).parameters.values() if p.name != "root"
    }
    if name == "listops":  # the generator's fields, and seq_len
        defaults = {**vars(listops.ListOpsSpec()), "seq_len": None}
    assert check_task_options(name, defaults) == defaults


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("listops", {"n_train": "many"}, "option n_train must be an integer >= 1 .*got 'many'"),
        ("listops", {"n_test": 0}, "n_test must be an integer >= 1 \\(0 leaves the split empty"),
        ("listops", {"seq_len": -3}, "option seq_len must be an integer >= 1 .*got -3 \\(int\\)"),
        ("listops", {"seed": 1.5}, "option seed must be an integer >= 0 .*got 1.5 \\(float\\)"),
        ("imdb", {"seq_len": True}, "seq_len must be an integer .*got True \\(bool\\)"),
        (
            "fashion-mnist",
            {"normalize": [1]},
            "normalize must be .*pair \\[mean, std\\].*got \\[1\\]",
        ),
        (
            "fashion-mnist",
            {"normalize": [0.5, 0]},
            "normalize must be .* std > 0, got \\[0.5, 0\\]",
        ),
        ("fashion-mnist", {"normalize": [math.nan, 1]}, "normalize must be .*finite.*got \\[nan"),
        ("cifar10", {"normalize": [[0.5, 0.5], [1, 1, 1]]}, "normalize must be .*a list of 3"),
        ("fashion-mnist", {"val_fraction": 1}, "val_fraction must be a number strictly between"),
        ("fashion-mnist", {"augment": "yes"}, "augment must be true or false, got 'yes'"),
        ("fashion-mnist", {"crop_padding": 100}, "crop_padding must be an integer >= 0 and <= 28"),
        ("pathfinder", {"resolution": 48}, "resolution must be one of \\[32, 64, 128, 256\\]"),
        ("kjv", {"level": "char"}, "level must be one of \\['word', 'byte'\\]"),
        ("listops", [1, 2], "task 'listops' options must be a mapping .*got \\[1, 2\\] \\(list\\)"),
        ("listops", "n_train=3", "must be a mapping .*\\(str\\)"),
        ("listops", {3: 1}, "has no options \\['3'\\]"),
        ("listops", {"max_len": 3}, "has no options \\['max_len'\\]; expected \\['seq_len'"),
    ],
)
def test_wrong_options_are_one_line_value_errors_naming_them(name, options, message):
    with pytest.raises(ValueError, match=message) as caught:
        check_task_options(name, options)
    check_message(caught.value)


def test_null_options_mean_none():
    assert check_task_options("listops", None) == {}


def test_tasks_refuse_wrong_roots_and_names():
    for call in (
        lambda: classification_task("digits", root=3),
        lambda: classification_task(["listops"]),
    ):
        with pytest.raises(ValueError) as caught:
            call()
        check_message(caught.value)


def test_an_empty_split_is_named(tmp_path):
    root = write_fashion_torchvision(tmp_path, n_train=30, n_test=10)
    with pytest.raises(ValueError, match="task 'fashion-mnist': the val split is empty"):
        classification_task("fashion-mnist", root, val_fraction=0.01)  # round(0.3) images
    with pytest.raises(ValueError, match="pathfinder val_fraction \\+ test_fraction must be"):
        classification_task("pathfinder", tmp_path, val_fraction=0.5, test_fraction=0.5)


@pytest.mark.parametrize("normalize", [(0.5, 0.0), (0.5, math.inf), (math.nan, 1.0)])
def test_datasets_refuse_a_normalisation_that_makes_non_finite_inputs(tmp_path, normalize):
    root = write_fashion_torchvision(tmp_path, n_train=3, n_test=2)
    with pytest.raises(ValueError, match="FashionMNISTDataset normalize must be"):
        FashionMNISTDataset("test", root, normalize=normalize)
    with pytest.raises(ValueError, match="digits normalize must be"):
        load_digits_images(normalize=normalize)
    with pytest.raises(ValueError, match="task 'digits' option normalize must be"):
        classification_task("digits", normalize=list(normalize))


# ---- generated option dicts -----------------------------------------------------------------

garbage = st.one_of(
    st.text(max_size=4),
    st.none(),
    st.booleans(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-3, 2),
    st.lists(st.integers(-1, 3), max_size=3),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=1),
)
# (plausible values, the test's own reading of what the option takes)
LISTOPS = {
    "seq_len": (st.none() | st.integers(1, 200), "int>=1 or null"),
    "n_train": (st.integers(1, 30), "int>=1"),
    "n_val": (st.integers(1, 10), "int>=1"),
    "n_test": (st.integers(1, 10), "int>=1"),
    "min_length": (st.integers(0, 30), "int>=0"),
    "max_length": (st.integers(8, 120), "int>=2"),
    "max_depth": (st.integers(3, 10), "int>=1"),
    "max_args": (st.integers(3, 6), "int>=2"),
    "seed": (st.integers(0, 5), "int>=0"),
}
FASHION = {
    "augment": (st.booleans(), "bool"),
    "flip": (st.booleans(), "bool"),
    "crop_padding": (st.integers(0, 4), "int>=0"),
    "normalize": (
        st.none() | st.tuples(st.floats(0, 1), st.floats(0.05, 2)).map(list),
        "mean_std",
    ),
    "val_fraction": (st.floats(0.05, 0.5), "fraction"),
    "seed": (st.integers(0, 3), "int>=0"),
}


def fits(value, kind: str) -> bool:
    """Whether `value` is of the kind the option takes, read from the tasks' documentation."""
    if kind.startswith("int>="):
        if value is None and kind.endswith("or null"):
            return True
        return type(value) is int and value >= int(kind[5])
    if kind == "bool":
        return type(value) is bool
    if kind == "fraction":
        return type(value) in (int, float) and 0 < value < 1
    if value is None:
        return True
    numbers = isinstance(value, (list, tuple)) and len(value) == 2
    numbers = numbers and all(type(v) in (int, float) and math.isfinite(v) for v in value)
    return numbers and value[1] > 0


def option_dicts(table: dict):
    entries = {key: st.one_of(*[plausible] * 4, garbage) for key, (plausible, _) in table.items()}
    unknown = st.dictionaries(
        st.sampled_from(["max_len", "normalise", ""]), st.integers(), max_size=1
    )
    return st.tuples(
        st.fixed_dictionaries({}, optional=entries),
        st.integers(0, 6).flatmap(lambda k: unknown if k == 0 else st.just({})),
    ).map(lambda pair: {**pair[0], **pair[1]})


def check_outcome(outcomes, table, name, root, options):
    wrong = [
        key for key, value in options.items() if key not in table or not fits(value, table[key][1])
    ]
    made, result = outcomes.run(lambda: classification_task(name, root, **options))
    if wrong:
        assert not made, (options, wrong)
        assert any(repr(key) in str(result) or f" {key} " in str(result) for key in wrong), result
        return
    if not made:  # a relation between options, or an empty split, named
        assert "split" in str(result) or any(key in str(result) for key in options), result
        return
    *splits, info = result
    for split in splits:
        assert len(split) >= 1
        inputs, label = split[0]
        assert torch.isfinite(inputs.float()).all() and 0 <= int(label) < info.num_classes


def test_generated_listops_options_give_splits_or_one_line_errors(cache, monkeypatch):
    monkeypatch.setattr(listops, "_MAX_FRUITLESS_DRAWS", 20_000)  # a crowded window fails fast
    outcomes = Outcomes()

    # small defaults under the drawn options: the LRA-sized ones take seconds to generate
    base = {"n_train": 20, "n_val": 5, "n_test": 5, "min_length": 10, "max_length": 60}

    @fuzz_settings(80)
    @given(option_dicts(LISTOPS))
    def check(options):
        check_outcome(outcomes, LISTOPS, "listops", None, {**base, **options})

    check()
    outcomes.assert_saw(accepted=5, refused=30)


def test_generated_fashion_mnist_options_give_splits_or_one_line_errors(tmp_path):
    root = write_fashion_torchvision(tmp_path, n_train=30, n_test=10)
    outcomes = Outcomes()

    @fuzz_settings(80)
    @given(option_dicts(FASHION))
    def check(options):
        check_outcome(outcomes, FASHION, "fashion-mnist", root, options)

    check()
    outcomes.assert_saw(accepted=5, refused=30)


@fuzz_settings(60)
@given(st.one_of(garbage, st.lists(st.tuples(st.text(max_size=3), st.integers()), max_size=2)))
def test_options_that_are_not_a_mapping_are_refused(options):
    outcomes = Outcomes()
    made, result = outcomes.run(lambda: check_task_options("fashion-mnist", options), "")
    if options is None:
        assert made and result == {}
    elif isinstance(options, dict):
        assert made == (options == {}) and (made or "has no options" in str(result))
    else:
        assert not made and "must be a mapping" in str(result)
