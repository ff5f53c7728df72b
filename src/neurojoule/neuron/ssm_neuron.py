"""The SpikingSSM soma: a LIF layer configured as in SpikingSSM, one neuron per channel.

Input and output [B, H, L] (time last). y <- y / v_th, then a hard-reset LIF with threshold 1,
v_reset = 0 and multiplicative decay `decay`. With zero initial and reset potentials
LIF(y; v_th) = LIF(y / v_th; 1), so one unit-threshold neuron -- and one SDN per decay --
serves every threshold. It runs in every LIF mode (lif_layer.LIF_MODES).
"""

from __future__ import annotations

from dataclasses import dataclass

from neurojoule.neuron.lif_core import LIFParameters
from neurojoule.neuron.lif_layer import LIF, LIF_MODES
from neurojoule.neuron.surrogate import get_surrogate

THRESHOLDS = ("channel", "shared", "fixed")


@dataclass(frozen=True)
class SSMNeuronConfig:
    """The neuron of a spiking S4D block.

    `decay`: multiplicative decay factor in [0, 1]; the SDN mode needs one of the shipped
    decays (sdn.SHIPPED_DECAYS). `threshold`: "channel" (one learnable ln v_th per channel),
    "shared" (one learnable scalar) or "fixed" (v_th = 1). `mode`: the LIF mode it starts in.
    """

    decay: float = 0.125
    threshold: str = "channel"
    mode: str = "bptt"
    surrogate: str = "triangle"

    def __post_init__(self):
        LIFParameters(decay=self.decay)  # checks the decay
        if self.threshold not in THRESHOLDS:
            raise ValueError(f"threshold must be one of {THRESHOLDS}, got {self.threshold!r}")
        if self.mode not in LIF_MODES:
            raise ValueError(f"LIF mode must be one of {LIF_MODES}, got {self.mode!r}")
        get_surrogate(self.surrogate)


class SSMNeuron(LIF):
    """LIF(time_dim=-1, decay, hard reset to 0, threshold 1 behind the scaling y / v_th) on
    [B, H, L], with H = `channels`; a per-channel threshold is stored as ln_vth [H, 1]."""

    def __init__(self, channels: int, config: SSMNeuronConfig | None = None):
        config = config or SSMNeuronConfig()
        per_channel = config.threshold == "channel"
        super().__init__(
            time_dim=-1,
            decay=config.decay,
            reset="hard",
            v_reset=0.0,
            surrogate=config.surrogate,
            mode=config.mode,
            channels=channels if per_channel else None,
            channel_dim=-2 if per_channel else None,
            learn_threshold=config.threshold != "fixed",
            divide_by_threshold=True,
        )
        self.config = config
