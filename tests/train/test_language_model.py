import csv
import json
import math
import shutil

import pytest
import torch

from neurojoule.cli import main
from neurojoule.train import load_checkpoint
from neurojoule.train.config import load_config
from neurojoule.train.language_model import evaluate_lm, is_lm_checkpoint, train_lm

SUBJECTS, VERBS, OBJECTS = ("the cat", "a dog", "the bird"), ("sees", "eats"), ("fish", "seeds")
TINY = [
    "task_options={seq_len: 16}",
    "model_options={d_model: 8, n_layers: 1, d_state: 4, adaptive_cutoffs: [4, 8],"
    " div_val: 2, tie_weights: true, emb_dropout: 0.1, softmax_dropout: 0.1}",
    "optim.batch_size=4",
    "optim.epochs=1",
    "optim.max_steps=3",
    "limit_train_samples=12",
]


def write_tiny_wikitext(root):
    lines = [
        f"{SUBJECTS[i % 3]} {VERBS[i % 2]} {OBJECTS[(i // 2) % 2]} ." for i in range(60)
    ]  # fmt: skip
    folder = root / "wikitext-103"
    folder.mkdir()
    for split, part in (("train", lines), ("valid", lines[:8]), ("test", lines[8:16])):
        (folder / f"wiki.{split}.tokens").write_text("\n".join(part) + "\n")
    return root


@pytest.fixture
def wikitext_root(tmp_path, monkeypatch):
    monkeypatch.setenv("NEUROJOULE_CACHE", str(tmp_path / "cache"))
    return write_tiny_wikitext(tmp_path)


def tiny_config(root, *more):
    return load_config("wikitext-103", [*TINY, f"task_root={root}", *more])


def metric_rows(out, version=0):
    return list(csv.DictReader((out / "log" / f"version_{version}" / "metrics.csv").open()))


def test_lm_trains_logs_perplexity_checkpoints_and_resumes(tmp_path, wikitext_root):
    out = tmp_path / "run"
    train_lm(tiny_config(wikitext_root), out, progress=False)
    last = out / "checkpoints" / "last.ckpt"
    assert last.is_file() and is_lm_checkpoint(last)
    assert json.loads((out / "lif_mode.json").read_text())["chosen"] in ("bptt", "sdn")
    rows = metric_rows(out)
    for column in ("train/loss_epoch", "train/ppl", "val/loss", "val/ppl", "test/ppl"):
        assert any(row.get(column) for row in rows), column
    assert any(row.get("test/spike_rate/backbone.layers.0.block.neuron") for row in rows)
    test_row = next(row for row in rows if row.get("test/ppl"))
    assert float(test_row["test/ppl"]) == pytest.approx(math.exp(float(test_row["test/loss"])))
    steps = torch.load(last, weights_only=True)["global_step"]
    assert steps == 3

    more = tiny_config(wikitext_root, "optim.max_steps=5", "optim.epochs=2")
    train_lm(more, out, resume=True, progress=False)
    assert torch.load(last, weights_only=True)["global_step"] == 5


def test_eval_prints_perplexity_rates_and_energy(tmp_path, wikitext_root, capsys):
    out = tmp_path / "run"
    train_lm(tiny_config(wikitext_root, "lif_mode=bptt"), out, progress=False)
    ckpt = out / "checkpoints" / "last.ckpt"
    result = evaluate_lm(ckpt, split="val")
    assert 1 < result["perplexity"] < 100 and math.isfinite(result["loss"])
    assert result["tokens"] == 8 * 6 - 1  # 8 lines of 5 words + <eos>, all but the first
    assert list(result["spike_rates"]) == ["backbone.layers.0.block.neuron"]
    _, _, model = load_checkpoint(ckpt)
    assert model.decoder.weights[0] is model.encoder.embeddings[0].weight  # ties survive
    capsys.readouterr()
    assert main(["eval", str(ckpt), "--split", "val"]) == 0
    printed = capsys.readouterr().out
    assert f"perplexity {result['perplexity']:.2f}" in printed
    assert "backbone.layers.0.block.neuron: spike rate" in printed
    assert main(["eval", str(ckpt), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["energy"]["totals"]["dense_macs"] > 0


def test_a_classifier_on_a_language_task_is_refused(tmp_path, wikitext_root):
    plain = "model_options={d_model: 8, n_layers: 1, d_state: 4}"
    config = tiny_config(wikitext_root, "model=spiking-ssm", plain)
    with pytest.raises(ValueError, match="spiking-ssm-lm"):
        train_lm(config, tmp_path / "run", progress=False)


@pytest.mark.skipif(shutil.which("bible") is None, reason="needs Debian's bible-kjv (`bible`)")
def test_cli_trains_on_the_king_james_bible(tmp_path, capsys):
    out = tmp_path / "kjv"
    argv = ["train", "spiking-ssm-lm", "--task", "kjv", "--config", "kjv-cpu", "--quiet"]
    tiny = [
        "--max-steps", "2", "--lif-mode", "bptt", "--out", str(out),
        "--set", "model_options.d_model=16", "--set", "model_options.n_layers=1",
        "--set", "task_options.seq_len=32", "--set", "limit_eval_samples=8",
    ]  # fmt: skip
    assert main(argv + tiny) == 0
    assert "evaluate with" in capsys.readouterr().out
    rows = metric_rows(out)
    assert any(row.get("test/ppl") for row in rows)
