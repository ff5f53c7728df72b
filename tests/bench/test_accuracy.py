import io
import json

import pytest
import yaml

from neurojoule.bench.accuracy import format_table, run, summarize
from neurojoule.bench.plots import plot_accuracy
from neurojoule.cli import main


def _row(config, model, seed, accuracy, rate=None):
    return {
        "config": config,
        "model": model,
        "seed": seed,
        "lif_mode": None if rate is None else "bptt",
        "test_accuracy": accuracy,
        "test_samples": 1000,
        "mean_spike_rate": rate,
        "energy_ratio": 1.0 if rate is None else 2.0,
        "train_seconds": 1.0,
    }


def test_summary_averages_seeds_and_judges_the_target():
    rows = [
        _row("a", "spiking-ssm", 0, 0.860, 0.13),
        _row("a", "s4d", 0, 0.870),
        _row("a", "spiking-ssm", 1, 0.866, 0.15),
        _row("a", "s4d", 1, 0.874),
        _row("b", "spiking-ssm", 0, 0.80, 0.16),  # close enough, but too many spikes
        _row("b", "s4d", 0, 0.80),
        _row("c", "spiking-ssm", 0, 0.70, 0.05),  # sparse, but 2 points behind
        _row("c", "s4d", 0, 0.72),
        _row("d", "spiking-ssm", 0, 0.70, 0.05),  # no baseline: no verdict
    ]
    a, b, c = summarize(rows)
    assert a["seeds"] == [0, 1]
    assert a["spiking_accuracy"] == pytest.approx(0.863)
    assert a["s4d_accuracy"] == pytest.approx(0.872)
    assert a["gap_points"] == pytest.approx(0.9)
    assert a["mean_spike_rate"] == pytest.approx(0.14)
    assert a["target_met"]
    assert not b["target_met"] and not c["target_met"]
    assert c["gap_points"] == pytest.approx(2.0)
    table = format_table(rows, "test machine")
    assert "gap 0.90 points" in table and "met" in table and "missed" in table


def test_plot_of_the_accuracies_is_a_png(tmp_path):
    rows = [_row("a", "spiking-ssm", 0, 0.86, 0.13), _row("a", "s4d", 0, 0.87)]
    path = plot_accuracy(rows, summarize(rows), tmp_path / "accuracy.png", "test")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="both models"):
        plot_accuracy(rows[:1], summarize(rows[:1]), tmp_path / "none.png", "test")


@pytest.fixture
def tiny_config(tmp_path, monkeypatch):
    monkeypatch.setenv("NEUROJOULE_CACHE", str(tmp_path / "cache"))
    config = {
        "task": "listops",
        "task_options": {
            "min_length": 20,
            "max_length": 60,
            "n_train": 64,
            "n_val": 16,
            "n_test": 24,
            "seq_len": 60,
        },
        "model_options": {"d_model": 8, "n_layers": 1, "d_state": 4, "bidirectional": True},
        "optim": {"batch_size": 16, "epochs": 1},
        "limit_eval_samples": 8,  # validation only: the benchmark tests on the whole split
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_bench_trains_both_models_per_seed_and_tests_on_the_whole_split(tmp_path, tiny_config):
    status = io.StringIO()
    rows = run(
        configs=[str(tiny_config)],
        out=tmp_path / "runs",
        seeds=(3, 4),
        progress=False,
        status=status,
    )
    lines = status.getvalue().splitlines()
    assert [line.split(":")[0] for line in lines] == [f"bench accuracy {i}/4" for i in (1, 2, 3, 4)]
    assert "tiny.yaml spiking-ssm seed 3" in lines[0] and "left" not in lines[0]
    assert all("min left" in line for line in lines[1:])
    assert [(r["model"], r["seed"]) for r in rows] == [
        ("spiking-ssm", 3),
        ("s4d", 3),
        ("spiking-ssm", 4),
        ("s4d", 4),
    ]
    assert all(r["test_samples"] == 24 for r in rows)
    assert all((tmp_path / "runs" / f"tiny-{r['model']}-seed{r['seed']}").is_dir() for r in rows)
    spiking = [r for r in rows if r["model"] == "spiking-ssm"]
    assert all(0 <= r["mean_spike_rate"] <= 1 for r in spiking)
    assert all(r["mean_spike_rate"] is None for r in rows if r["model"] == "s4d")

    # run again: finished runs are evaluated, not retrained; an unfinished one resumes
    checkpoints = [
        path
        for path in sorted((tmp_path / "runs").glob("*/checkpoints/last.ckpt"))
        if "tiny-s4d-seed4" not in str(path)  # the unfinished one
    ]
    stamps = [path.stat().st_mtime_ns for path in checkpoints]
    (tmp_path / "runs" / "tiny-s4d-seed4" / "timing.json").unlink()
    again = run(configs=[str(tiny_config)], out=tmp_path / "runs", seeds=(3, 4), progress=False)
    assert [r["test_accuracy"] for r in again] == [r["test_accuracy"] for r in rows]
    assert [path.stat().st_mtime_ns for path in checkpoints] == stamps
    assert (tmp_path / "runs" / "tiny-s4d-seed4" / "timing.json").is_file()
    stored = tmp_path / "runs" / "tiny-spiking-ssm-seed3" / "config.yaml"
    stored.write_text(stored.read_text().replace("epochs: 1", "epochs: 2"))
    with pytest.raises(ValueError, match="another config"):
        run(configs=[str(tiny_config)], out=tmp_path / "runs", seeds=(3,), progress=False)


def test_bench_trains_the_spiking_model_in_the_lif_mode_asked_and_reuses_s4d(tmp_path, tiny_config):
    out = tmp_path / "runs"
    (auto_spiking, baseline) = run(configs=[str(tiny_config)], out=out, progress=False)
    chosen = json.loads((out / "tiny-spiking-ssm-seed0" / "lif_mode.json").read_text())["chosen"]
    assert auto_spiking["lif_mode"] == chosen and baseline["lif_mode"] is None
    s4d_checkpoint = out / "tiny-s4d-seed0" / "checkpoints" / "last.ckpt"
    stamp = s4d_checkpoint.stat().st_mtime_ns

    sdn_spiking, again = run(configs=[str(tiny_config)], out=out, progress=False, lif_mode="sdn")
    stored = yaml.safe_load((out / "tiny-spiking-ssm-sdn-seed0" / "config.yaml").read_text())
    assert stored["lif_mode"] == "sdn" and sdn_spiking["lif_mode"] == "sdn"
    assert s4d_checkpoint.stat().st_mtime_ns == stamp
    assert again["test_accuracy"] == baseline["test_accuracy"]
    (summary,) = summarize([sdn_spiking, again])
    assert summary["spiking_trained_lif"] == ["sdn"]
    assert "trained with sdn LIF" in format_table([sdn_spiking, again], "test machine")
    with pytest.raises(ValueError, match="lif_mode must be one of"):
        run(configs=[str(tiny_config)], out=out, progress=False, lif_mode="exact")


def test_bench_accuracy_command_prints_rows_and_summary(tmp_path, tiny_config, capsys):
    out = tmp_path / "runs"
    args = ["bench", "accuracy", "--configs", str(tiny_config), "--out", str(out), "--json"]
    assert main([*args, "--repeats", "1", "--plot", str(tmp_path / "a.png")]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert [r["model"] for r in printed["rows"]] == ["spiking-ssm", "s4d"]
    assert printed["summary"][0]["config"] == str(tiny_config)
    assert (tmp_path / "a.png").is_file()
