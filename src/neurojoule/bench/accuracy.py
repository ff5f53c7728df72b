"""Accuracy at equal budget: SpikingSSM against the non-spiking S4D with the same backbone.

Both models train on the same CPU-sized config (same data, steps and seeds), then each run's
best checkpoint (by validation accuracy) is evaluated on the whole test split with the exact
LIF: accuracy, mean spike rate and the energy of the model against the same network run as
an ANN. A finished run of the same config in the output folder is evaluated again, not
retrained; an unfinished one resumes from its last checkpoint. `lif_mode` is how the spiking
model trains (default auto: the fastest on the device; "sdn" shows what training with the
surrogate dynamic network costs in accuracy); S4D runs serve every mode. The target: the
spiking model within 1 point of S4D at a mean spike rate <= 0.15.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import TextIO

import yaml

from neurojoule.train import evaluate, train
from neurojoule.train.config import LIF_MODES, TrainConfig, load_config

SPIKING, BASELINE = "spiking-ssm", "s4d"
MODELS = (SPIKING, BASELINE)
CONFIGS = ("fashion-mnist-seq-cpu", "listops-cpu")
TARGET_GAP_POINTS = 1.0
TARGET_RATE = 0.15


def run(
    configs=CONFIGS,
    out: str | Path = "runs/bench-accuracy",
    seeds=(0,),
    progress: bool = True,
    lif_mode: str = "auto",
    status: TextIO | None = None,
) -> list[dict]:
    """One row per config, model and seed. `progress`: Lightning's and the evaluation's bars
    (Lightning's on stdout); `status`: a stream for one line per run with the time left."""
    if lif_mode not in LIF_MODES:
        raise ValueError(f"lif_mode must be one of {LIF_MODES}, got {lif_mode!r}")
    jobs = [(name, seed, model) for name in configs for seed in seeds for model in MODELS]
    rows, start = [], time.monotonic()
    for done, (name, seed, model) in enumerate(jobs):
        if status is not None:
            what = f"{name} {model} seed {seed}"
            line = _status_line(done, len(jobs), what, time.monotonic() - start)
            print(line, file=status, flush=True)
        rows.append(_train_and_evaluate(name, model, seed, Path(out), progress, lif_mode))
    return rows


def _status_line(done: int, total: int, what: str, seconds: float) -> str:
    """Runs differ in length and finished ones are only evaluated, so the estimate is rough."""
    left = f", about {seconds / done * (total - done) / 60:.0f} min left" if done else ""
    return f"bench accuracy {done + 1}/{total}: {what} ({seconds / 60:.0f} min so far{left})"


def _train_and_evaluate(
    name: str, model: str, seed: int, out: Path, progress: bool, lif_mode: str
) -> dict:
    spiking = model == SPIKING
    config = load_config(name, model=model, seed=seed, lif_mode=lif_mode if spiking else None)
    mode_tag = f"-{lif_mode}" if spiking and lif_mode != "auto" else ""
    run_dir = out / f"{Path(name).stem}-{model}{mode_tag}-seed{seed}"
    seconds = _finished_run_seconds(run_dir, config)
    if seconds is None:
        resume = (run_dir / "checkpoints" / "last.ckpt").is_file()
        train(config, run_dir, resume=resume, progress=progress)
        seconds = _finished_run_seconds(run_dir, config)
    result = evaluate(run_dir, whole_split=True, progress=progress)
    energy = result["energy"]
    return {
        "config": name,
        "model": model,
        "seed": seed,
        "evaluated": result["evaluated"],
        "lif_mode": _trained_lif_mode(run_dir, config) if spiking else None,
        "test_accuracy": result["accuracy"],
        "test_samples": result["samples"],
        "mean_spike_rate": result["mean_spike_rate"],
        "snn_energy_j_per_sample": energy.per_sample.snn_energy_j,
        "ann_energy_j_per_sample": energy.per_sample.ann_energy_j,
        "energy_ratio": energy.totals.energy_ratio,
        "train_seconds": seconds,
        "epochs": config.optim.epochs,
        "spike_rate_penalty": config.spike_rate_penalty,
    }


def _trained_lif_mode(run_dir: Path, config) -> str:
    """The LIF mode the spiking model trained in: the config's, or the one auto chose."""
    recorded = run_dir / "lif_mode.json"
    if config.lif_mode == "auto" and recorded.is_file():
        return json.loads(recorded.read_text())["chosen"]
    return config.lif_mode


def _finished_run_seconds(run_dir: Path, config) -> float | None:
    """Training seconds of a finished run of `config` in run_dir (None: no finished run there),
    so that a benchmark run again, or after an interruption, trains only what is missing."""
    config_file, timing = run_dir / "config.yaml", run_dir / "timing.json"
    if not config_file.is_file():
        return None
    if TrainConfig(**yaml.safe_load(config_file.read_text())).to_dict() != config.to_dict():
        raise ValueError(
            f"{run_dir} holds a run of another config than {config_file.name} would be now; "
            "move it away or give the benchmark another --out"
        )
    return json.loads(timing.read_text())["train_seconds"] if timing.is_file() else None


def summarize(rows: list[dict]) -> list[dict]:
    """Per config, the seed means of both models, the gap in points and the target verdict."""
    summary = []
    for name in dict.fromkeys(row["config"] for row in rows):
        spiking = [r for r in rows if r["config"] == name and r["model"] == SPIKING]
        baseline = [r for r in rows if r["config"] == name and r["model"] == BASELINE]
        if not spiking or not baseline:
            continue
        spiking_accuracy = statistics.mean(r["test_accuracy"] for r in spiking)
        baseline_accuracy = statistics.mean(r["test_accuracy"] for r in baseline)
        rate = statistics.mean(r["mean_spike_rate"] for r in spiking)
        gap = (baseline_accuracy - spiking_accuracy) * 100
        summary.append(
            {
                "config": name,
                "seeds": sorted({r["seed"] for r in spiking}),
                "spiking_trained_lif": sorted({r["lif_mode"] for r in spiking}),
                "spiking_accuracy": spiking_accuracy,
                "s4d_accuracy": baseline_accuracy,
                "gap_points": gap,
                "mean_spike_rate": rate,
                "target_met": gap <= TARGET_GAP_POINTS and rate <= TARGET_RATE,
            }
        )
    return summary


def format_table(rows: list[dict], machine: str) -> str:
    lines = [
        f"accuracy at equal budget (whole test split, exact LIF); {machine}",
        f"{'config':<24} {'model':<12} {'seed':>4} {'accuracy':>9} {'spike rate':>11} "
        f"{'ANN/SNN energy':>15} {'train s':>8} {'trained LIF':>11}",
    ]
    for r in rows:
        rate = "—" if r["mean_spike_rate"] is None else f"{r['mean_spike_rate']:.3f}"
        lines.append(
            f"{r['config']:<24} {r['model']:<12} {r['seed']:>4} {r['test_accuracy'] * 100:>8.2f}% "
            f"{rate:>11} {r['energy_ratio']:>14.2f}x {r['train_seconds']:>8.0f} "
            f"{r['lif_mode'] or '—':>11}"
        )
    for s in summarize(rows):
        verdict = "met" if s["target_met"] else "missed"
        lines.append(
            f"{s['config']} (seeds {s['seeds']}): SpikingSSM (trained with "
            f"{'/'.join(s['spiking_trained_lif'])} LIF) {s['spiking_accuracy'] * 100:.2f} % "
            f"at rate {s['mean_spike_rate']:.3f}, S4D {s['s4d_accuracy'] * 100:.2f} %, "
            f"gap {s['gap_points']:.2f} points; target (gap <= {TARGET_GAP_POINTS:g} at rate "
            f"<= {TARGET_RATE:g}) {verdict}"
        )
    return "\n".join(lines)
