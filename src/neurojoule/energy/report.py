"""What an EnergyCounter measured, priced with an energy table (docs/energy.md).

SNN energy = E_MAC x (dense MACs of synaptic layers whose input was not binary)
           + E_AC  x (SOPs of synaptic layers whose input was binary);
the ANN of the same shape costs E_MAC x (dense MACs of all synaptic layers). Only synaptic
operations are priced: neuron updates, normalisation and memory traffic are not.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass

from neurojoule.energy.render import format_report
from neurojoule.energy.table import EnergyTable


@dataclass(frozen=True)
class SynapticRow:
    """One synaptic layer (Linear, Conv1d/2d, SynapticMatmul), summed over all its calls."""

    name: str
    kind: str
    calls: int
    input_elements: int
    input_nonzero: int
    input_nonbinary: int  # input values not in {0, 1}
    input_min: float | None  # None when the layer only saw empty inputs
    input_max: float | None
    dense_macs: int
    sops: int

    @property
    def binary(self) -> bool:
        """True when every input value the layer ever received was 0 or 1."""
        return self.input_nonbinary == 0

    @property
    def nonzero_rate(self) -> float:
        return _ratio(self.input_nonzero, self.input_elements)

    @property
    def nonbinary_fraction(self) -> float:
        return _ratio(self.input_nonbinary, self.input_elements)

    @property
    def fan_out(self) -> float:
        """Outputs reached per input element on average (padding taps of a conv included)."""
        return _ratio(self.dense_macs, self.input_elements)


@dataclass(frozen=True)
class NeuronRow:
    """One neuron layer (a SpikingNeuron), summed over all its calls."""

    name: str
    kind: str
    calls: int
    spikes: float
    elements: int

    @property
    def firing_rate(self) -> float:
        return _ratio(self.spikes, self.elements)


@dataclass(frozen=True)
class EnergyTotals:
    """Sums over all layers (or, from EnergyReport.per_sample, those sums per sample)."""

    real_input_macs: float  # dense MACs of layers whose input was not binary
    sops: float  # SOPs of layers whose input was binary
    dense_macs: float  # all synaptic layers, every step: what a dense network would compute
    spikes: float
    neuron_elements: float
    snn_energy_j: float
    ann_energy_j: float

    @property
    def energy_ratio(self) -> float:
        """ANN energy / SNN energy (inf when the SNN costs nothing, nan when neither does)."""
        if self.snn_energy_j == 0:
            return math.nan if self.ann_energy_j == 0 else math.inf
        return self.ann_energy_j / self.snn_energy_j

    def scaled(self, factor: float) -> EnergyTotals:
        return EnergyTotals(*(value * factor for value in asdict(self).values()))


@dataclass(frozen=True)
class NonBinaryInput:
    """A synaptic layer that received values other than 0 and 1."""

    name: str
    kind: str
    nonbinary_fraction: float
    input_min: float | None
    input_max: float | None
    excluded: bool  # True for the first layer when the check exempts it


@dataclass(frozen=True)
class MFICheck:
    """Multiplication-free inference: every synaptic layer after the first gets binary input.

    `first_layer` is the first synaptic layer executed (it sees the raw input, e.g. an image);
    when `exclude_first`, its input may be real-valued, and `first_layer_excluded` says that it
    was and was exempted. `layers` lists every synaptic layer that received non-binary input.
    """

    first_layer: str | None
    exclude_first: bool
    layers: tuple[NonBinaryInput, ...]

    @property
    def first_layer_excluded(self) -> bool:
        return any(entry.excluded for entry in self.layers)

    @property
    def violations(self) -> tuple[NonBinaryInput, ...]:
        return tuple(entry for entry in self.layers if not entry.excluded)

    @property
    def holds(self) -> bool:
        return not self.violations

    @property
    def verdict(self) -> str:
        """One line: holds or refuted, and which layers refute it."""
        scope = "every synaptic layer"
        if self.exclude_first and self.first_layer is not None:
            scope += f" after the first ({self.first_layer})"
        if self.holds:
            return f"MFI holds: {scope} received binary input only"
        names = ", ".join(entry.name for entry in self.violations)
        return f"MFI refuted: not {scope} received binary input; non-binary input reached {names}"

    def details(self) -> list[str]:
        """One line per layer that received non-binary input: its fraction and value range."""
        return [_describe(entry) for entry in self.layers]

    def to_dict(self) -> dict:
        return {
            "holds": self.holds,
            "verdict": self.verdict,
            "first_layer": self.first_layer,
            "exclude_first": self.exclude_first,
            "first_layer_excluded": self.first_layer_excluded,
            "non_binary_layers": [_json_safe(asdict(entry)) for entry in self.layers],
            "violations": [entry.name for entry in self.violations],
        }


@dataclass(frozen=True)
class EnergyReport:
    """Per-layer measurements of `samples` input samples, priced with `table`.

    `layers` are the synaptic layers and `neurons` the neuron layers, each in first-call order.
    `uncounted` names modules that ran and do perform MACs but are not counted
    (e.g. Conv3d, ConvTranspose2d, MultiheadAttention), so a total is never silently short.
    `time_steps` = T > 1 says the model repeated one input over T steps (direct encoding). The
    same-shape ANN processes the input once: its MACs are the dense MACs / T. The first
    synaptic layer (the encoding layer) sees the same input at every step, so its output is
    computed once and it is priced once, for the SNN as for the ANN.
    """

    table: EnergyTable
    samples: int
    layers: tuple[SynapticRow, ...]
    neurons: tuple[NeuronRow, ...]
    uncounted: tuple[str, ...] = ()
    time_steps: int = 1

    def __post_init__(self):
        if isinstance(self.samples, bool) or not isinstance(self.samples, numbers.Integral):
            raise ValueError(f"samples must be an int >= 1, got {self.samples!r}")
        object.__setattr__(self, "samples", int(self.samples))
        if self.samples < 1:
            raise ValueError(f"samples must be >= 1, got {self.samples}")
        if isinstance(self.time_steps, bool) or not isinstance(self.time_steps, numbers.Integral):
            raise ValueError(f"time_steps must be an int >= 1, got {self.time_steps!r}")
        if self.time_steps < 1:
            raise ValueError(f"time_steps must be >= 1, got {self.time_steps}")
        if not self.layers and not self.neurons:
            raise ValueError(
                "expected at least one synaptic or neuron layer to have run, got none: "
                "was the model called inside the EnergyCounter?"
            )

    def layer_cost(self, row: SynapticRow) -> tuple[float, float]:
        """(MACs, SOPs) the SNN spends in `row`: MACs when its input was real-valued, else
        SOPs; the encoding layer of a direct-encoding model once, not at every step."""
        once = self.time_steps if self.time_steps > 1 and row is self.layers[0] else 1
        if row.binary:
            return 0.0, row.sops / once
        return row.dense_macs / once, 0.0

    def layer_energy_j(self, row: SynapticRow) -> tuple[float, float]:
        """(SNN, ANN) energy of `row` over all samples."""
        macs, sops = self.layer_cost(row)
        snn = macs * self.table.mac_j + sops * self.table.ac_j
        return snn, row.dense_macs / self.time_steps * self.table.mac_j

    @property
    def totals(self) -> EnergyTotals:
        costs = [self.layer_cost(row) for row in self.layers]
        energies = [self.layer_energy_j(row) for row in self.layers]
        return EnergyTotals(
            real_input_macs=sum(macs for macs, _ in costs),
            sops=sum(sops for _, sops in costs),
            dense_macs=sum(row.dense_macs for row in self.layers),
            spikes=sum(row.spikes for row in self.neurons),
            neuron_elements=sum(row.elements for row in self.neurons),
            snn_energy_j=sum(snn for snn, _ in energies),
            ann_energy_j=sum(ann for _, ann in energies),
        )

    @property
    def per_sample(self) -> EnergyTotals:
        return self.totals.scaled(1.0 / self.samples)

    @property
    def energy_ratio(self) -> float:
        return self.totals.energy_ratio

    @property
    def mean_firing_rate(self) -> float | None:
        """Spikes / elements over all neuron layers (None when no neuron layer ran)."""
        totals = self.totals
        if not totals.neuron_elements:
            return None
        return totals.spikes / totals.neuron_elements

    def mfi(self, exclude_first: bool = True) -> MFICheck:
        first = self.layers[0].name if self.layers else None
        entries = tuple(
            NonBinaryInput(
                name=row.name,
                kind=row.kind,
                nonbinary_fraction=row.nonbinary_fraction,
                input_min=row.input_min,
                input_max=row.input_max,
                excluded=exclude_first and row.name == first,
            )
            for row in self.layers
            if not row.binary
        )
        return MFICheck(first_layer=first, exclude_first=exclude_first, layers=entries)

    def to_dict(self) -> dict:
        """A JSON-serialisable dict; non-finite numbers become None."""
        table = self.table
        totals = self.totals
        return {
            "table": asdict(table),
            "samples": self.samples,
            "time_steps": self.time_steps,
            "layers": [self._layer_dict(row) for row in self.layers],
            "neurons": [
                _json_safe({**asdict(row), "firing_rate": row.firing_rate}) for row in self.neurons
            ],
            "totals": _json_safe(
                {
                    **asdict(totals),
                    "energy_ratio": totals.energy_ratio,
                    "mean_firing_rate": self.mean_firing_rate,
                    "per_sample": asdict(self.per_sample),
                }
            ),
            "mfi": self.mfi().to_dict(),
            "uncounted": list(self.uncounted),
        }

    def _layer_dict(self, row: SynapticRow) -> dict:
        snn, ann = self.layer_energy_j(row)
        derived = {
            "binary": row.binary,
            "nonzero_rate": row.nonzero_rate,
            "nonbinary_fraction": row.nonbinary_fraction,
            "fan_out": row.fan_out,
            "snn_energy_j": snn,
            "ann_energy_j": ann,
            "snn_energy_per_sample_j": snn / self.samples,
        }
        return _json_safe({**asdict(row), **derived})

    def format_table(self) -> str:
        return format_report(self)


def _describe(entry: NonBinaryInput) -> str:
    exempt = " (first layer, exempt)" if entry.excluded else ""
    return (
        f"{entry.name} ({entry.kind}): {entry.nonbinary_fraction:.2%} non-binary, "
        f"range [{entry.input_min:g}, {entry.input_max:g}]{exempt}"
    )


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else 0.0


def _json_safe(value):
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
