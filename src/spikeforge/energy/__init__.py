"""Honest energy accounting: synaptic operations, spikes, an energy model and an MFI check.

Reads models only through forward hooks and module types, so any nn.Module can be measured:

    with EnergyCounter(model) as counter:
        model(x)
    print(counter.report(samples=x.shape[0]).format_table())
"""

from spikeforge.energy.counter import ROOT_NAME, UNCOUNTED_TYPES, EnergyCounter, measure_energy
from spikeforge.energy.ops import SYNAPTIC_TYPES, SynapticMatmul, conv_sops
from spikeforge.energy.render import format_count, format_energy
from spikeforge.energy.report import (
    EnergyReport,
    EnergyTotals,
    MFICheck,
    NeuronRow,
    NonBinaryInput,
    SynapticRow,
)
from spikeforge.energy.table import DEFAULT_TABLE, ENERGY_TABLES, EnergyTable, get_energy_table

__all__ = [
    "DEFAULT_TABLE",
    "ENERGY_TABLES",
    "ROOT_NAME",
    "SYNAPTIC_TYPES",
    "UNCOUNTED_TYPES",
    "EnergyCounter",
    "EnergyReport",
    "EnergyTable",
    "EnergyTotals",
    "MFICheck",
    "NeuronRow",
    "NonBinaryInput",
    "SynapticMatmul",
    "SynapticRow",
    "conv_sops",
    "format_count",
    "format_energy",
    "get_energy_table",
    "measure_energy",
]
