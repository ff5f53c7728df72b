"""The SpikingSSM soma: one LIF neuron per channel behind a learnable threshold scaling.

y <- y / exp(ln_vth), then a hard-reset LIF with v_th = 1, v_reset = 0 and multiplicative
decay tau. With zero initial and reset potentials LIF(y; v_th) = LIF(y / v_th; 1), so one
unit-threshold neuron -- and one SDN per tau -- serves every threshold. Modes:
  "bptt", "sltt": the exact LIF (compiled kernel on CPU), gradients through time or not;
  "sdn": all steps at once from the SDN's predicted potentials.
Switching the mode never changes the parameters (the SDN is a frozen, shipped network).
"""

from __future__ import annotations

import torch
from torch import nn

from neurojoule.neuron.lif_core import LIFDynamics, SpikingNeuron, lif
from neurojoule.neuron.sdn import load_sdn, sdn_spikes

SSM_NEURON_MODES = ("bptt", "sltt", "sdn")
THRESHOLDS = ("channel", "shared", "fixed")


class SSMNeuron(SpikingNeuron):
    """Input and output [B, H, L] (time last). `threshold`: "channel" (one learnable ln v_th per
    channel), "shared" (one learnable scalar) or "fixed" (v_th = 1)."""

    def __init__(
        self,
        channels: int,
        *,
        tau: float = 0.125,
        threshold: str = "channel",
        mode: str = "bptt",
        surrogate: str = "triangle",
    ):
        super().__init__()
        if threshold not in THRESHOLDS:
            raise ValueError(f"threshold must be one of {THRESHOLDS}, got {threshold!r}")
        self.channels, self.tau, self.threshold = channels, float(tau), threshold
        self.surrogate = surrogate
        if threshold != "fixed":
            self.ln_vth = nn.Parameter(torch.zeros((channels, 1) if threshold == "channel" else ()))
        self._sdn = None
        self.mode = mode

    @property
    def mode(self) -> str:
        return self._mode

    @mode.setter
    def mode(self, mode: str) -> None:
        if mode not in SSM_NEURON_MODES:
            raise ValueError(f"SSM neuron mode must be one of {SSM_NEURON_MODES}, got {mode!r}")
        if mode == "sdn" and self._sdn is None:
            # kept out of the module tree: the SDN is frozen and never part of a checkpoint
            self.__dict__["_sdn"] = load_sdn(self.tau)
        self._mode = mode

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        if y.dim() != 3 or y.shape[1] != self.channels:
            raise ValueError(
                f"SSMNeuron expects [B, {self.channels}, L], got shape {tuple(y.shape)}"
            )
        y = self.unit_threshold_input(y)
        if self.mode == "sdn":
            sdn = self._sdn.to(y.device, y.dtype)
            return sdn_spikes(y.reshape(-1, y.shape[-1]), sdn, self.surrogate).reshape(y.shape)
        dynamics = LIFDynamics(
            decay="multiplicative", reset="hard", mode=self.mode, surrogate=self.surrogate
        )
        return lif(y, time_dim=-1, tau=self.tau, dynamics=dynamics)[0]

    def unit_threshold_input(self, y: torch.Tensor) -> torch.Tensor:
        """The currents the unit-threshold LIF (and the SDN) receive: y / v_th."""
        return y if self.threshold == "fixed" else y / self.ln_vth.exp()

    def extra_repr(self) -> str:
        return (
            f"channels={self.channels}, tau={self.tau}, threshold={self.threshold}, "
            f"mode={self.mode}"
        )
