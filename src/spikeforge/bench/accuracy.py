"""Accuracy at equal budget: SpikingSSM against the non-spiking S4D with the same backbone.

Both models train on the same CPU-sized config (same data, steps and seed), then each
checkpoint is evaluated on the test split with the exact LIF: accuracy, mean spike rate and
the energy of the model against the same network run as an ANN.
"""

from __future__ import annotations

import time
from pathlib import Path

from spikeforge.train.config import load_config
from spikeforge.train.sequence import evaluate, train

MODELS = ("spiking-ssm", "s4d")
CONFIGS = ("fashion-mnist-seq-cpu", "listops-cpu")


def run(
    configs=CONFIGS, out: str | Path = "runs/bench-accuracy", seed: int = 0, progress: bool = True
) -> list[dict]:
    rows = []
    for name in configs:
        for model in MODELS:
            config = load_config(name, model=model, seed=seed)
            start = time.perf_counter()
            run_dir = train(config, Path(out) / f"{name}-{model}", progress=progress)
            seconds = time.perf_counter() - start
            result = evaluate(run_dir / "checkpoints" / "last.ckpt")
            energy = result["energy"]
            rows.append(
                {
                    "config": name,
                    "model": model,
                    "test_accuracy": result["accuracy"],
                    "mean_spike_rate": result["mean_spike_rate"],
                    "snn_energy_j_per_sample": energy.per_sample.snn_energy_j,
                    "ann_energy_j_per_sample": energy.per_sample.ann_energy_j,
                    "energy_ratio": energy.totals.energy_ratio,
                    "train_seconds": seconds,
                    "epochs": config.optim.epochs,
                    "seed": seed,
                }
            )
    return rows


def format_table(rows: list[dict], machine: str) -> str:
    lines = [
        f"accuracy at equal budget (test split, exact LIF); {machine}",
        f"{'config':<24} {'model':<12} {'accuracy':>9} {'spike rate':>11} {'ANN/SNN energy':>15} "
        f"{'train s':>8}",
    ]
    for r in rows:
        rate = "—" if r["mean_spike_rate"] is None else f"{r['mean_spike_rate']:.3f}"
        lines.append(
            f"{r['config']:<24} {r['model']:<12} {r['test_accuracy'] * 100:>8.2f}% {rate:>11} "
            f"{r['energy_ratio']:>14.2f}x {r['train_seconds']:>8.0f}"
        )
    return "\n".join(lines)
