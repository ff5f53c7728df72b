"""Benchmark rows as PNG plots: time (or memory) against the sequence length L, and the
accuracies of the equal-budget comparison."""

from __future__ import annotations

import statistics
from pathlib import Path

from neurojoule.util.files import save_figure


def _axes():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(6.4, 4.2), dpi=120)


def plot_rows(
    rows: list[dict],
    series: dict[str, str],
    path: str | Path,
    title: str,
    ylabel: str = "seconds",
    log_y: bool = True,
) -> Path:
    """One line per `series` entry (row key -> legend label) over row["L"]; missing values
    (None) are left out. Writes a PNG and returns its path."""
    if not rows:
        raise ValueError("nothing to plot: the benchmark returned no rows")
    fig, ax = _axes()
    for key, label in series.items():
        points = [(row["L"], row[key]) for row in rows if row.get(key) is not None]
        if points:
            ax.plot(*zip(*points, strict=True), marker="o", label=label)
    ax.set_xscale("log", base=2)
    if log_y:
        ax.set_yscale("log")
    ax.set_xlabel("sequence length L")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    return save_figure(fig, path)


def _accuracy_label(model: str, entry: dict) -> str:
    if model != "spiking-ssm":
        return model
    return f"{model} (trained with {'/'.join(entry['spiking_trained_lif'])} LIF)"


def plot_accuracy(rows: list[dict], summary: list[dict], path: str | Path, title: str) -> Path:
    """`neurojoule bench accuracy`: per config, a bar per model at its seed-mean test accuracy
    with a dot per seed, and above the spiking model's bar its mean spike rate and its
    accuracy minus the baseline's."""
    if not summary:
        raise ValueError("nothing to plot: no config has rows of both models")
    fig, ax = _axes()
    width = 0.38
    for i, entry in enumerate(summary):
        seeds_of = {}
        for offset, model in ((-width / 2, "spiking-ssm"), (width / 2, "s4d")):
            seeds = seeds_of[model] = [
                r["test_accuracy"] * 100
                for r in rows
                if r["config"] == entry["config"] and r["model"] == model
            ]
            ax.bar(
                i + offset,
                statistics.mean(seeds),
                width,
                label=(_accuracy_label(model, entry) if i == 0 else None),
                color="C0" if model == "spiking-ssm" else "C1",
            )
            ax.plot([i + offset] * len(seeds), seeds, "k.")
        ax.annotate(  # above the best seed's dot, so that no dot covers the text
            f"rate {entry['mean_spike_rate']:.3f}, {-entry['gap_points']:+.2f} points",
            (i - width / 2, max(seeds_of["spiking-ssm"])),
            textcoords="offset points",
            xytext=(0, 4),
            ha="center",
            fontsize=8,
        )
    accuracies = [r["test_accuracy"] * 100 for r in rows]
    ax.set_ylim(max(0.0, min(accuracies) - 5), min(100.0, max(accuracies) + 3))
    ax.set_xticks(range(len(summary)), [entry["config"] for entry in summary])
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title, fontsize=10)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend()
    return save_figure(fig, path)


SERIES = {
    "neuron": {
        "ours_s": "neurojoule (SpikingJelly config)",
        "spikingjelly_s": "SpikingJelly 2.0",
        "ours_snntorch_config_s": "neurojoule (snnTorch config)",
        "snntorch_s": "snnTorch 1.0",
    },
    "sdn": {
        "bptt_s": "BPTT (per-step autograd)",
        "sltt_s": "SLTT",
        "sdn_s": "SDN",
        "fastest_exact_s": "fastest exact LIF",
        "spikingjelly_s": "SpikingJelly",
    },
    "memory": {"peak_mib": "peak memory of one training step"},
}
