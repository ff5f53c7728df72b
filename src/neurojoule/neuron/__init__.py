"""The spiking core: surrogate spikes and LIF dynamics."""

from neurojoule.neuron.lif_core import LIF, LIFDynamics, SpikingNeuron, lif, lif_trace
from neurojoule.neuron.ssm_neuron import SSM_NEURON_MODES, SSMNeuron
from neurojoule.neuron.surrogate import (
    SURROGATES,
    ATan,
    Rectangular,
    Sigmoid,
    Surrogate,
    Triangle,
    get_surrogate,
    spike,
)

__all__ = [
    "LIF",
    "LIFDynamics",
    "SpikingNeuron",
    "lif",
    "lif_trace",
    "SSM_NEURON_MODES",
    "SSMNeuron",
    "SURROGATES",
    "ATan",
    "Rectangular",
    "Sigmoid",
    "Surrogate",
    "Triangle",
    "get_surrogate",
    "spike",
]
