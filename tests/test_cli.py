import json
from pathlib import Path

import pytest

from neurojoule.cli import main


def test_version(capsys):
    assert main(["version"]) == 0
    assert capsys.readouterr().out.startswith("neurojoule ")


@pytest.mark.parametrize(
    "argv",
    [
        ["no-such-command"],
        ["demo", "--epochs", "0"],
        ["bench", "neuron", "--lengths", "x"],
        [],
        ["sdn", "train", "--tau", "0.125", "--device", "gpu"],
        ["bench", "sdn", "--device", "cpu:0"],
        ["bench", "memory", "--device", "cuda:x"],
    ],
)
def test_bad_arguments_exit_nonzero_with_one_line(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "error" in err and "Traceback" not in err


@pytest.mark.parametrize(
    "argv, seeded",
    [
        (["--help"], False),
        (["demo", "--help"], True),
        (["train", "--help"], True),
        (["bench", "neuron", "--help"], True),
        (["sdn", "eval", "--help"], True),
        (["eval", "--help"], False),
        (["bench", "memory", "--help"], False),
        (["models", "--help"], False),
    ],
)
def test_every_command_has_help_and_only_random_ones_take_a_seed(argv, seeded, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "usage" in out
    assert ("--seed" in out) == seeded


def test_a_seed_given_to_a_command_without_randomness_is_an_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["eval", "some.ckpt", "--seed", "3"])
    assert exit_info.value.code == 2
    assert "--seed" in capsys.readouterr().err


def test_bad_energy_table_is_rejected_before_training(capsys):
    assert main(["demo", "--energy-table", "mac=4.6"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("neurojoule demo: error:") and "mac=" in err and err.count("\n") == 1


def test_library_value_errors_become_one_line(monkeypatch, capsys):
    import neurojoule.train.demo as demo

    def broken(*_, **__):
        raise ValueError("expected something, got something else")

    monkeypatch.setattr(demo, "run_demo", broken)
    assert main(["demo"]) == 2
    assert (
        capsys.readouterr().err
        == "neurojoule demo: error: expected something, got something else\n"
    )


def test_bench_neuron_json_rows(capsys):
    assert (
        main(
            [
                "bench",
                "neuron",
                "--lengths",
                "64",
                "200",
                "--channels",
                "16",
                "--repeats",
                "1",
                "--json",
            ]
        )
        == 0
    )
    rows = json.loads(capsys.readouterr().out)
    assert [row["L"] for row in rows] == [64, 200]
    for row in rows:
        for key in (
            "ours_s",
            "spikingjelly_s",
            "snntorch_s",
            "speedup_vs_spikingjelly",
            "speedup_vs_snntorch",
            "spikes_equal",
        ):
            assert key in row
        assert row["ours_s"] > 0


def test_models_lists_published_variants_with_size_and_input_shape(capsys):
    assert main(["models", "--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert {"spiking-mlp-spe-t", "spiking-mlp-spe-s", "spiking-mlp-s"} <= set(rows)
    assert rows["spikformer-4-384"]["params"] == pytest.approx(9.32e6, rel=0.01)
    assert rows["spikformer-8-768"]["input_shape"] == ["batch", 3, 224, 224]
    assert rows["spiking-mlp"]["input_shape"] == ["batch", 1, 28, 28]
    assert rows["spiking-ssm"]["input_shape"] == ["batch", "length", 1]
    assert main(["models"]) == 0
    assert "spikformer-8-768" in capsys.readouterr().out


def test_cuda_is_refused_where_there_is_none(monkeypatch, capsys):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit):
        main(["bench", "sdn", "--device", "cuda"])
    assert "CUDA is not available" in capsys.readouterr().err


def test_train_notes_a_config_written_for_another_task(monkeypatch, tmp_path, capsys):
    import neurojoule.train
    from neurojoule.train.fit import TrainResult

    trained = []

    def fake_train(config, out, **_):
        trained.append(config.task)
        return TrainResult(Path(out), Path(out) / "best.ckpt", {"test/acc": 0.5}, None)

    monkeypatch.setattr(neurojoule.train, "train", fake_train)
    base = ["train", "s4d", "--config", "listops-cpu", "--out", str(tmp_path / "run")]
    assert main([*base, "--task", "imdb"]) == 0
    assert (
        "config listops-cpu was written for task listops; training imdb" in capsys.readouterr().err
    )
    assert main([*base, "--task", "listops"]) == 0
    assert "note" not in capsys.readouterr().err and trained == ["imdb", "listops"]
