"""A search's result for people: the front as a terminal table and as a PNG (validation
accuracy against energy per sample, the front joined, the hand-designed model marked)."""

from __future__ import annotations

from pathlib import Path

from neurojoule.util.files import save_figure

COLUMNS = ("val acc", "energy", "params", "T")  # then the subnet's genes, T excepted


def format_duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {rest} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def _values(values) -> str:
    if isinstance(values, list | tuple):
        return ",".join(map(_values, values))
    if values is None or isinstance(values, bool):
        return {None: "-", True: "yes", False: "no"}[values]
    return f"{values:.3g}"


def _params(count: int) -> str:
    if count >= 100_000:
        return f"{count / 1e6:.2f}M"
    return f"{count / 1e3:.1f}k" if count >= 1000 else str(count)


def _genes(entries: list[dict]) -> list[str]:
    names = dict.fromkeys(name for entry in entries for name in entry["subnet"])
    return [name for name in names if name != "steps"]


def _trained(entry: dict) -> tuple[str, ...]:
    """A trained candidate's test accuracy and steps (cut ones marked)."""
    training = entry.get("training") or {}
    test = training.get("test_accuracy")
    steps = f"{training['steps']}{' cut' if training['cut'] else ''}" if training else "-"
    return ("-" if test is None else f"{test * 100:.2f} %", steps)


def _row(entry: dict, genes: list[str], trained: bool) -> tuple[str, ...]:
    subnet = entry["subnet"]
    return (
        *(_trained(entry) if trained else ()),
        f"{entry['val_accuracy'] * 100:.2f} %",
        f"{entry['energy_uj']:.4g} µJ",
        _params(entry["params"]),
        str(entry["steps"]),
        *(_values(subnet.get(name)) for name in genes),
        f"{entry['fitness']:.4f}",
    )


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(cells[i]) for cells in [header, *rows]) for i in range(len(header))]
    return [
        "  ".join(cell.rjust(w) for cell, w in zip(cells, widths, strict=True))
        for cells in [header, *rows]
    ]


def format_result(result: dict) -> str:
    """The front as a table, the fittest subnet and the reference under it."""
    settings, validation = result["settings"], result["validation"]
    where = result["space"] or f"a space of {result['model']}"
    lines = [
        f"{result['algorithm']} on {where}: {result['generations']} generations, "
        f"{result['evaluated']} subnets evaluated in {format_duration(result['seconds'])} on "
        f"{validation['samples']} validation samples",
        f"front ({', '.join(settings['objectives'])} minimised): {len(result['front'])} subnets; "
        f"fitness: {result['fitness_rule']}",
    ]
    named = [("best", result["best"]), ("largest", result["largest"])]
    if result["reference"] is not None:
        named.append((result["reference"]["name"], result["reference"]))
    named = [(name, entry) for name, entry in named if entry is not None]
    entries = result["front"] + [entry for _, entry in named]
    genes = _genes(entries)
    trained = any("training" in entry for entry in entries)
    header = ("#", *(("test acc", "steps") if trained else ()), *COLUMNS, *genes, "fitness")
    rows = [(str(i + 1), *_row(e, genes, trained)) for i, e in enumerate(result["front"])]
    rows += [(name, *_row(entry, genes, trained)) for name, entry in named]
    lines += _table(header, rows)
    proxy = result.get("proxy")
    if proxy is not None and proxy["kendall_tau"] is not None:
        lines.append(
            f"proxy: Kendall tau {proxy['kendall_tau']:.3f} (p {proxy['p_value']:.3g}) between "
            f"the {proxy['name']} and the trained accuracy of {proxy['candidates']} candidates"
        )
    if result["reference"] is not None:
        lines.append(
            f"{result['reference']['name']}: the hand-designed network, evaluated like every subnet"
        )
    return "\n".join(lines)


def plot_front(result: dict, path: str | Path) -> Path:
    """Validation accuracy against energy per sample: every evaluated subnet, the front
    joined, the fittest subnet and the hand-designed reference marked. Writes a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    if result["points"]:
        energy, accuracy = zip(*result["points"], strict=True)
        ax.scatter(energy, [a * 100 for a in accuracy], s=12, color="0.7", label="evaluated")
    front = result["front"]
    if front:
        ax.plot(
            [e["energy_uj"] for e in front],
            [e["val_accuracy"] * 100 for e in front],
            marker="o",
            color="tab:blue",
            label=f"front ({len(front)})",
        )
    reference = result["reference"]
    if reference is not None:
        ax.scatter(
            [reference["energy_uj"]],
            [reference["val_accuracy"] * 100],
            marker="*",
            s=180,
            color="tab:red",
            zorder=3,
            label=reference.get("label", f"{reference['name']} (hand-designed)"),
        )
    best = result["best"]
    if best is not None:
        ax.scatter(
            [best["energy_uj"]],
            [best["val_accuracy"] * 100],
            marker="D",
            s=40,
            facecolors="none",
            edgecolors="black",
            zorder=3,
            label="fittest",
        )
    ax.set_xlabel(f"energy per sample (µJ, SNN, table {result['validation']['table']})")
    ax.set_ylabel("validation accuracy (%)")
    where = result["space"] or result["model"]
    noun = result.get("evaluated_noun", "subnets")
    ax.set_title(f"{result['algorithm']} on {where}: {result['evaluated']} {noun}", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, path)
