"""Benchmark rows as PNG line plots: time (or memory) against the sequence length L."""

from __future__ import annotations

from pathlib import Path


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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not rows:
        raise ValueError("nothing to plot: the benchmark returned no rows")
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
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
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


SERIES = {
    "neuron": {
        "ours_s": "spikeforge (SpikingJelly config)",
        "spikingjelly_s": "SpikingJelly 2.0",
        "ours_snntorch_config_s": "spikeforge (snnTorch config)",
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
