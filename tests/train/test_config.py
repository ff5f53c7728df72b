import pytest

from neurojoule.train.config import config_names, load_config

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
