"""A fixed-width terminal table of an EnergyReport; every count and energy is per sample.

This module sits below report.py (EnergyReport.format_table calls it) and imports nothing from
it: it reads a report only through the public attributes and methods of EnergyReport.
"""

from __future__ import annotations

_ENERGY_UNITS = ((1.0, "J"), (1e-3, "mJ"), (1e-6, "µJ"), (1e-9, "nJ"), (1e-12, "pJ"))
_COUNT_SUFFIXES = ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))


def format_report(report) -> str:
    """The table of an EnergyReport: layers, neuron layers, totals and the MFI verdict."""
    table = report.table
    lines = [
        f"Energy per sample over {report.samples} sample(s); table {table.name} "
        f"(MAC {table.mac_pj:g} pJ, AC {table.ac_pj:g} pJ)",
        "",
    ]
    if report.layers:
        lines += _synaptic_lines(report) + [""]
    if report.neurons:
        lines += _neuron_lines(report) + [""]
    lines += _total_lines(report)
    return "\n".join(lines)


def format_energy(joules: float) -> str:
    """Energy with a unit that keeps the number readable: 3.2 µJ, 870 nJ, 12.5 pJ."""
    for scale, unit in _ENERGY_UNITS:
        if abs(joules) >= scale:
            return f"{joules / scale:.3g} {unit}"
    return f"{joules / 1e-12:.3g} pJ"


def format_count(value: float) -> str:
    """A count with an SI suffix: 950, 12.3k, 4.56M."""
    for scale, suffix in _COUNT_SUFFIXES:
        if abs(value) >= scale:
            return f"{value / scale:.3g}{suffix}"
    return f"{value:.3g}"


def _synaptic_lines(report) -> list[str]:
    header = ("layer", "type", "binary", "nnz rate", "fan-out", "MACs", "SOPs", "SNN energy")
    per = 1.0 / report.samples
    rows = [
        (
            row.name,
            row.kind,
            "yes" if row.binary else "no",
            f"{row.nonzero_rate:.2%}",
            f"{row.fan_out:.4g}",
            format_count(row.dense_macs * per),
            format_count(row.sops * per),
            format_energy(report.layer_energy_j(row)[0] * per),
        )
        for row in report.layers
    ]
    return _columns(header, rows, left=2)


def _neuron_lines(report) -> list[str]:
    header = ("neuron layer", "type", "firing rate", "spikes", "neurons x steps")
    per = 1.0 / report.samples
    rows = [
        (
            row.name,
            row.kind,
            f"{row.firing_rate:.2%}",
            format_count(row.spikes * per),
            format_count(row.elements * per),
        )
        for row in report.neurons
    ]
    lines = _columns(header, rows, left=2)
    lines.append(f"mean firing rate {report.mean_firing_rate:.2%}")
    return lines


def _total_lines(report) -> list[str]:
    per_sample = report.per_sample
    ratio = per_sample.energy_ratio
    lines = [
        f"MACs on real-valued input {format_count(per_sample.real_input_macs)}, "
        f"SOPs on spikes {format_count(per_sample.sops)}, "
        f"dense MACs {format_count(per_sample.dense_macs)}",
        f"SNN {format_energy(per_sample.snn_energy_j)} vs ANN "
        f"{format_energy(per_sample.ann_energy_j)} per sample: ANN/SNN = {ratio:.3g}x",
    ]
    if report.time_steps > 1:
        lines.append(
            f"(direct encoding over {report.time_steps} steps: the same-shape ANN runs once, "
            f"and the first layer ({report.layers[0].name}) is computed once for both)"
        )
    if report.uncounted:
        lines.append(
            "NOT COUNTED (ran, but their operations are missing from the totals): "
            + ", ".join(report.uncounted)
        )
    check = report.mfi()
    return lines + [check.verdict] + [f"  {line}" for line in check.details()]


def _columns(header: tuple[str, ...], rows: list[tuple[str, ...]], left: int) -> list[str]:
    """Fixed-width lines: the first `left` columns left-aligned, the others right-aligned."""
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]

    def line(cells: tuple[str, ...]) -> str:
        padded = (
            cell.ljust(width) if index < left else cell.rjust(width)
            for index, (cell, width) in enumerate(zip(cells, widths, strict=True))
        )
        return "  ".join(padded).rstrip()

    return [line(header), line(tuple("-" * width for width in widths))] + [
        line(row) for row in rows
    ]
