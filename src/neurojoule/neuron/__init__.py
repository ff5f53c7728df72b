"""The spiking core: surrogate spikes, LIF dynamics (one step, whole sequences, layers), the SDN."""

from neurojoule.neuron.lif_core import (
    DECAY_FORMS,
    LIFParameters,
    lif,
    lif_step,
    lif_trace,
    membrane_potential,
)
from neurojoule.neuron.lif_layer import (
    EXACT_MODES,
    LIF,
    LIF_MODES,
    SpikingNeuron,
    lif_layers,
    lif_mode,
    set_lif_mode,
    ssm_neurons,
)
from neurojoule.neuron.ssm_neuron import THRESHOLDS, SSMNeuron, SSMNeuronConfig
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
    "DECAY_FORMS",
    "EXACT_MODES",
    "LIF",
    "LIF_MODES",
    "LIFParameters",
    "SpikingNeuron",
    "lif",
    "lif_layers",
    "lif_mode",
    "lif_step",
    "lif_trace",
    "membrane_potential",
    "set_lif_mode",
    "ssm_neurons",
    "SSMNeuron",
    "SSMNeuronConfig",
    "THRESHOLDS",
    "SURROGATES",
    "ATan",
    "Rectangular",
    "Sigmoid",
    "Surrogate",
    "Triangle",
    "get_surrogate",
    "spike",
]
