import dataclasses
import math
import re

import pytest

from neurojoule.train.config import (
    OptimConfig,
    TrainConfig,
    config_names,
    default_config,
    describe_configs,
    load_config,
    written_for,
)

REFERENCE_ROWS = {
    # (d_model, d_state, prenorm, norm, dropout, lr, weight_decay, batch, epochs), REFERENCE §1
    "listops": (256, 4, False, "batch", 0.0, 0.01, 0.01, 32, 40),
    "imdb": (256, 4, True, "batch", 0.0, 0.01, 0.05, 16, 32),
    "aan": (256, 64, True, "batch", 0.0, 0.01, 0.01, 64, 20),
    "cifar-gray-seq": (512, 64, False, "layer", 0.1, 0.01, 0.01, 50, 200),
    "pathfinder": (256, 64, True, "batch", 0.0, 0.004, 0.01, 64, 200),
    "pathx": (256, 64, True, "batch", 0.0, 0.001, 0.01, 16, 50),
}


@pytest.mark.parametrize("name", sorted(REFERENCE_ROWS))
def test_shipped_configs_match_the_published_table(name):
    config = load_config(name)
    m, o = config.model_options, config.optim
    got = (
        m["d_model"],
        m["d_state"],
        m["prenorm"],
        m["norm"],
        m["dropout"],
        o.lr,
        o.weight_decay,
        o.batch_size,
        o.epochs,
    )
    assert got == REFERENCE_ROWS[name]
    assert m["n_layers"] == 6 and m["bidirectional"] is True


def test_every_config_loads_and_cpu_variants_exist():
    names = config_names()
    assert {"listops-cpu", "fashion-mnist-seq-cpu"} <= set(names)
    for name in names:
        load_config(name)


def test_overrides_and_fields():
    config = load_config(
        "listops-cpu",
        ["model_options.d_model=32", "optim.lr=0.002", "limit_train_samples=100"],
        model="s4d",
        seed=3,
    )
    assert config.model == "s4d" and config.seed == 3
    assert config.model_options["d_model"] == 32 and config.optim.lr == 0.002
    assert config.limit_train_samples == 100


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        (["optim.learning_rate=1"], "unknown optim keys"),
        (["epochs=3"], "unknown config keys"),
        (["lif_mode=fast"], "lif_mode"),
        (["optim.batch_size=0"], "batch_size"),
        (["no_equals_sign"], "key=value"),
        (["spike_rate_penalty=-1"], "spike_rate_penalty"),
        (["spike_rate_target=1.5"], "spike_rate_target"),
        (["optim.max_steps=0"], "optim.max_steps"),
        (["limit_train_samples=-5"], "limit_train_samples"),
        (["limit_eval_samples=0"], "limit_eval_samples"),
        (["limit_eval_samples=2.5"], "limit_eval_samples"),
        (["optim.warmup_fraction=1"], "warmup_fraction"),
    ],
)
def test_bad_overrides_are_rejected(overrides, match):
    with pytest.raises(ValueError, match=match):
        load_config("listops-cpu", overrides)


def test_unknown_config_lists_the_known_ones():
    with pytest.raises(ValueError, match="listops-cpu"):
        load_config("no-such-config")


def test_wikitext_config_matches_the_published_row():
    config = load_config("wikitext-103")
    m, o = config.model_options, config.optim
    assert config.task == "wikitext-103" and config.task_options["seq_len"] == 8192
    assert (m["d_model"], m["n_layers"], m["d_state"], m["bidirectional"]) == (1024, 16, 64, False)
    assert (m["prenorm"], m["norm"], m["dropout"]) == (True, "layer", 0.1)
    assert (o.lr, o.weight_decay, o.batch_size) == (5e-4, 0.1, 1)
    assert m["adaptive_cutoffs"] == [19997, 39997, 199997] and m["div_val"] == 4
    assert m["tie_weights"] is True
    assert (m["emb_dropout"], m["softmax_dropout"]) == (0.25, 0.25)


# ---- every field checked against its annotation ------------------------------------------

# values of each YAML kind, and the annotations that take them (written from the
# annotations' meaning, not from the checker): int takes integers only, float any finite
# real number, str strings, dict mappings; "| None" takes null too
VALUES = {
    "integer": 3,
    "float": 2.5,
    "true": True,
    "text": "abc",
    "list": [1, 2],
    "mapping": {"a": 1},
    "null": None,
    "nan": math.nan,
    "infinity": -math.inf,
}
TAKES = {
    "int": {"integer"},
    "float": {"integer", "float"},
    "str": {"text"},
    "dict": {"mapping"},
}
TYPE_MESSAGES = r"must be (an integer|a number|a finite number|a string|a mapping|a section)"


def _fields():
    for cls, prefix in ((TrainConfig, ""), (OptimConfig, "optim.")):
        for item in dataclasses.fields(cls):
            if prefix + item.name != "optim":
                yield prefix + item.name, item.type


def test_the_checked_fields_are_all_fields():
    names = {name for name, _ in _fields()}
    assert len(names) == len(dataclasses.fields(TrainConfig)) - 1 + len(
        dataclasses.fields(OptimConfig)
    )
    assert {kind for _, kind in _fields()} <= {f"{k} | None" for k in TAKES} | set(TAKES)


@pytest.mark.parametrize("name, annotation", list(_fields()))
@pytest.mark.parametrize("kind", list(VALUES))
def test_each_field_takes_its_type_and_refuses_the_others(name, annotation, kind):
    base, _, optional = annotation.partition(" | ")
    fits = kind in TAKES[base] or (optional and kind == "null")
    override = f"{name}={_yaml(VALUES[kind])}"
    if not fits:
        with pytest.raises(ValueError, match=name.replace(".", r"\.")) as error:
            load_config("listops-cpu", [override])
        assert "\n" not in str(error.value)
        return
    try:
        config = load_config("listops-cpu", [override])
    except ValueError as error:  # the right type, refused for its range or choices
        assert not re.search(TYPE_MESSAGES, str(error)), error
        return
    value = config.optim if name.startswith("optim.") else config
    got = getattr(value, name.split(".")[-1])
    assert got == VALUES[kind]
    if base == "float":
        assert type(got) is float  # ints become floats


def _yaml(value) -> str:
    import yaml

    if isinstance(value, float) and math.isnan(value):
        return ".nan"
    if isinstance(value, float) and math.isinf(value):
        return "-.inf"
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


@pytest.mark.parametrize(
    "fields, match",
    [
        ({"optim": [1]}, "optim must be a section"),
        ({"optim": {"lr": "fast"}}, "optim.lr must be a number"),
        ({"seed": -1}, "seed must be in"),
        ({"seed": 2**32}, "seed must be in"),
        ({"seed": 2**70}, "seed must be an integer of at most 2\\*\\*63 - 1"),
        ({"task": "no-such-task"}, "unknown task 'no-such-task'"),
        ({"model": "no-such-model"}, "unknown model 'no-such-model'"),
        ({"model_options": {"x": {1, 2}}}, "model_options.x must be a string, number"),
        ({"task_options": {"x": 1}}, "task 'listops' has no options \\['x'\\]"),
        ({"task_options": {"seq_len": "long"}}, "seq_len"),
        ({"task": "cifar10", "task_options": {"normalize": [[0.5] * 3, [0.25] * 3]}}, None),
        ({"task_root": 3}, "task_root must be a string or null"),
    ],
)
def test_train_config_checks_what_code_passes_too(fields, match):
    if match is None:
        assert TrainConfig(**fields).task_options == fields["task_options"]
        return
    with pytest.raises(ValueError, match=match):
        TrainConfig(**fields)


def test_task_root_takes_a_path_as_its_string(tmp_path):
    assert TrainConfig(task_root=tmp_path).task_root == str(tmp_path)


def test_options_too_large_or_deep_are_refused_fast():
    deep: list = []
    for _ in range(100):
        deep = [deep]
    with pytest.raises(ValueError, match="too large or too deeply nested"):
        TrainConfig(model_options={"x": deep})
    shared = [0] * 10
    for _ in range(40):  # 10**40 values if expanded: YAML aliases can write this
        shared = [shared] * 10
    with pytest.raises(ValueError, match="too large or too deeply nested"):
        TrainConfig(task_options={"x": shared})


def test_an_empty_config_file_is_refused(tmp_path):
    for text in ("", "\n\n", "# nothing\n", "{}\n", "null\n"):
        path = tmp_path / "empty.yaml"
        path.write_text(text)
        with pytest.raises(ValueError, match="holds no settings"):
            load_config(path)


def test_yaml_aliases_load_as_plain_values(tmp_path):
    path = tmp_path / "aliases.yaml"
    path.write_text("task: listops\ntask_options: {n_train: &n 64, n_val: *n}\n")
    config = load_config(path)
    assert config.task_options == {"n_train": 64, "n_val": 64}


# ---- configs by name ---------------------------------------------------------------------


def test_every_task_has_a_default_config_written_for_it():
    from neurojoule.data.tasks import LM_TASKS, TASKS

    for task in [*TASKS, *LM_TASKS]:
        name = default_config(task)
        assert written_for(name) == task
        assert load_config(name).task == task
    assert default_config("kjv") == "kjv-cpu" and default_config("digits") == "digits"
    with pytest.raises(ValueError, match="unknown task 'mnist'"):
        default_config("mnist")


def test_describe_configs_reads_each_files_first_comment():
    rows = {row["name"]: row for row in describe_configs()}
    assert set(rows) == set(config_names())
    assert rows["digits"] == {
        "name": "digits",
        "task": "digits",
        "model": None,
        "description": "scikit-learn's 8x8 digits as images for the vision SNNs (spiking-mlp, "
        "spikformer), CPU-sized.",
    }
    assert rows["cifar10"]["model"] == "spikformer-4-384"


def test_new_configs_match_the_published_and_sibling_settings():
    cifar = load_config("cifar10")
    o = cifar.optim
    # docs/vision.md: AdamW lr 5e-4, weight decay 0.06, batch 128, 300 epochs, 20 warm-up
    assert (o.lr, o.weight_decay, o.batch_size, o.epochs) == (5e-4, 0.06, 128, 300)
    assert round(o.warmup_fraction * o.epochs) == 20
    from neurojoule.data import CIFAR10_MEAN_STD, CIFAR100_MEAN_STD, FASHION_MNIST_MEAN_STD

    assert tuple(map(tuple, cifar.task_options["normalize"])) == CIFAR10_MEAN_STD
    hundred = load_config("cifar100")
    assert tuple(map(tuple, hundred.task_options["normalize"])) == CIFAR100_MEAN_STD
    assert hundred.optim == cifar.optim
    perm, seq = load_config("fashion-mnist-perm"), load_config("fashion-mnist-seq-cpu")
    assert perm.model_options == seq.model_options and perm.optim == seq.optim
    assert tuple(perm.task_options["normalize"]) == FASHION_MNIST_MEAN_STD
    assert perm.spike_rate_penalty == seq.spike_rate_penalty
    digits = load_config("digits")
    from sklearn.datasets import load_digits

    pixels = load_digits().data / 16.0
    mean, std = digits.task_options["normalize"]
    assert mean == pytest.approx(pixels.mean(), abs=1e-4)
    assert std == pytest.approx(pixels.std(), abs=1e-4)


def test_a_model_option_the_task_sets_is_a_one_line_error():
    from neurojoule.data.tasks import TaskInfo
    from neurojoule.train.module import build_model_for_task

    overrides = ["model_options.image_size=28"]
    config = load_config("digits", overrides, model="dense-snn", task="digits")
    info = TaskInfo(name="digits", num_classes=10, seq_len=64, in_channels=1, image_size=8)
    with pytest.raises(ValueError, match=r"model options \['image_size'\] are set by the task"):
        build_model_for_task(config, info)
