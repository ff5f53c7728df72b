"""Honest energy accounting: synaptic operations, spikes, an energy model and an MFI check.

Reads models only through forward hooks and module types, so any nn.Module can be measured:

    with EnergyCounter(model) as counter:
        model(x)
    print(counter.report(samples=x.shape[0]).format_table())

For inference, `fold_batchnorm` folds batch norms into the synapses next to them and
`accumulate_only` swaps binary-input synapses for accumulate-only ones.
"""

from neurojoule.energy.accumulate import (
    AccumulateConv,
    AccumulateConv1d,
    AccumulateConv2d,
    AccumulateLinear,
    AccumulateOnly,
    accumulate_only,
)
from neurojoule.energy.counter import ROOT_NAME, UNCOUNTED_TYPES, EnergyCounter, measure_energy
from neurojoule.energy.fold import (
    FOLD_METHOD,
    batchnorm_affine,
    fold_batchnorm,
    fold_into_input,
    fold_into_output,
    unfolded_batchnorms,
)
from neurojoule.energy.ops import SYNAPTIC_TYPES, SynapticMatmul, conv_sops
from neurojoule.energy.render import format_count, format_energy
from neurojoule.energy.report import (
    EnergyReport,
    EnergyTotals,
    MFICheck,
    NeuronRow,
    NonBinaryInput,
    SynapticRow,
)
from neurojoule.energy.table import DEFAULT_TABLE, ENERGY_TABLES, EnergyTable, get_energy_table

__all__ = [
    "DEFAULT_TABLE",
    "ENERGY_TABLES",
    "FOLD_METHOD",
    "ROOT_NAME",
    "SYNAPTIC_TYPES",
    "UNCOUNTED_TYPES",
    "AccumulateConv",
    "AccumulateConv1d",
    "AccumulateConv2d",
    "AccumulateLinear",
    "AccumulateOnly",
    "EnergyCounter",
    "EnergyReport",
    "EnergyTable",
    "EnergyTotals",
    "MFICheck",
    "NeuronRow",
    "NonBinaryInput",
    "SynapticMatmul",
    "SynapticRow",
    "accumulate_only",
    "batchnorm_affine",
    "conv_sops",
    "fold_batchnorm",
    "fold_into_input",
    "fold_into_output",
    "format_count",
    "format_energy",
    "get_energy_table",
    "measure_energy",
    "unfolded_batchnorms",
]
