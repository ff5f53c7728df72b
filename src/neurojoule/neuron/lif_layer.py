"""LIF neurons as a layer (nn.Module): learnable parameters, modes, and switching modes.

Modes of a LIF layer (LIF_MODES):
  "bptt"  the exact LIF, gradients through the state across time;
  "sltt"  the exact LIF with the state detached from one step to the next;
  "sdn"   all steps at once from the potentials the surrogate dynamic network predicts (for a
          fixed multiplicative decay with a shipped SDN, hard reset to 0).
Switching the mode never changes a layer's parameters, so never a checkpoint.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace

import torch
from torch import nn

from neurojoule.neuron.lif_core import BACKENDS, LIFParameters, check_time_steps, lif
from neurojoule.neuron.sdn import load_sdn, sdn_spikes
from neurojoule.neuron.surrogate import Surrogate

LIF_MODES = ("bptt", "sltt", "sdn")
EXACT_MODES = LIF_MODES[:2]


class SpikingNeuron(nn.Module):
    """Marker base class of neuron layers: energy accounting records their firing rates."""


class LIF(SpikingNeuron):
    """A layer of LIF neurons: spikes of a whole sequence from rest, `lif` with its parameters.

    Give `decay` (multiplicative decay, a factor in [0, 1]) or `tau` (input decay, a time
    constant >= 1). With `channels`, the learnable parameters hold one value per channel along
    `channel_dim`, counted from the end of the input's shape (-1 for [T, B, C], -2 for
    [B, C, L]); they are stored shaped (channels, 1, ..., 1) so that they broadcast against
    the input. Without, they are shared scalars. The threshold is learned as ln(v_th), the
    decay as a logit w: decay = sigmoid(w), or 1 / tau = sigmoid(w) (PLIF).

    `divide_by_threshold` feeds x / v_th to neurons of threshold 1 instead of comparing the
    potential of x with v_th (SpikingSSM's threshold scaling): with v_reset = 0 the spikes are
    the same, the surrogate gradient is not.

    forward(x) returns spikes. To run a long sequence in chunks (or a stream, step by step),
    carry the state: `spikes, state = layer(chunk, state=state)`, from zeros at rest.
    """

    def __init__(
        self,
        *,
        time_dim: int,
        decay: float | None = None,
        tau: float | None = None,
        v_threshold: float = 1.0,
        v_reset: float = 0.0,
        reset: str = "hard",
        detach_reset: bool = False,
        surrogate: str | Surrogate = "triangle",
        mode: str = "bptt",
        channels: int | None = None,
        channel_dim: int | None = None,
        learn_threshold: bool = False,
        learn_decay: bool = False,
        divide_by_threshold: bool = False,
        backend: str = "auto",
    ):
        super().__init__()
        # the parameters as given (learned ones start from these values); checks them
        self.spec = LIFParameters(
            decay=decay,
            tau=tau,
            v_threshold=v_threshold,
            v_reset=v_reset,
            reset=reset,
            detach_reset=detach_reset,
            surrogate=surrogate,
        )
        if (channels is None) != (channel_dim is None):
            raise ValueError(
                "give both channels and channel_dim for per-channel parameters, or neither"
            )
        if channel_dim is not None and channel_dim >= 0:
            raise ValueError(
                "channel_dim is counted from the end of the input's shape (-1 for [T, B, C], "
                f"-2 for [B, C, L]), got {channel_dim}"
            )
        if backend not in BACKENDS:
            raise ValueError(f"LIF backend must be one of {BACKENDS}, got {backend!r}")
        self.time_dim, self.channels, self.channel_dim = time_dim, channels, channel_dim
        self.divide_by_threshold, self.backend = divide_by_threshold, backend
        shape = (channels,) + (1,) * (-channel_dim - 1) if channels else ()
        if learn_threshold:
            self.ln_vth = nn.Parameter(torch.full(shape, math.log(v_threshold)))
        if learn_decay:
            rate = decay if tau is None else 1.0 / tau
            self.decay_logit = nn.Parameter(torch.full(shape, _logit(rate)))
        self._sdn = None
        self.mode = mode

    @property
    def decay_form(self) -> str:
        return self.spec.decay_form

    @property
    def decay(self) -> float | torch.Tensor | None:
        """The multiplicative decay factor (None under input decay)."""
        if self.decay_form != "multiplicative":
            return None
        return torch.sigmoid(self.decay_logit) if self.learns_decay else self.spec.decay

    @property
    def tau(self) -> float | torch.Tensor | None:
        """The input-decay time constant (None under multiplicative decay)."""
        if self.decay_form != "input":
            return None
        return 1.0 / torch.sigmoid(self.decay_logit) if self.learns_decay else self.spec.tau

    @property
    def v_threshold(self) -> float | torch.Tensor:
        return self.ln_vth.exp() if hasattr(self, "ln_vth") else self.spec.v_threshold

    @property
    def learns_decay(self) -> bool:
        return hasattr(self, "decay_logit")

    @property
    def sdn_capable(self) -> bool:
        """Whether the SDN can stand in for this layer's LIF (given an SDN for its decay): a
        fixed multiplicative decay and a hard reset to 0."""
        p = self.spec
        return (
            p.decay_form == "multiplicative"
            and not self.learns_decay
            and p.reset == "hard"
            and p.v_reset == 0.0
        )

    @property
    def mode(self) -> str:
        return self._mode

    @mode.setter
    def mode(self, mode: str) -> None:
        if mode not in LIF_MODES:
            raise ValueError(f"LIF mode must be one of {LIF_MODES}, got {mode!r}")
        if mode == "sdn" and self._sdn is None:
            if not self.sdn_capable:
                raise ValueError(
                    "LIF mode 'sdn' needs a fixed multiplicative decay and a hard reset to 0, "
                    f"got {self.decay_form} decay{' (learned)' * self.learns_decay}, "
                    f"{self.spec.reset} reset to {self.spec.v_reset}"
                )
            # kept out of the module tree: the SDN is frozen and never part of a checkpoint
            self.__dict__["_sdn"] = load_sdn(self.spec.decay)
        self._mode = mode

    def forward(self, x: torch.Tensor, state: torch.Tensor | None = None):
        """Spikes of x from rest; with `state`, (spikes, state) from that state: see `step`."""
        if state is not None:
            return self.step(x, state)
        if self.mode == "sdn":
            return self._sdn_spikes(x)
        currents, params = self.lif_arguments(x)
        return lif(currents, params, time_dim=self.time_dim, backend=self.backend)[0]

    def step(self, x: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Continue from `state` (the potentials after the previous step, shaped like one
        step of x: x without its time axis; zeros at rest) over the steps of x (for streaming,
        one): returns (spikes, state after the last step). Always the exact LIF, whatever the
        mode: an SDN predicts from a whole sequence, which a stream does not have."""
        currents, params = self.lif_arguments(x)
        return lif(currents, params, time_dim=self.time_dim, state=state, backend=self.backend)

    def lif_arguments(self, x: torch.Tensor) -> tuple[torch.Tensor, LIFParameters]:
        """(currents, parameters) this layer runs `lif` with on input x, in its exact modes."""
        self._check_input(x)
        v_threshold = self.v_threshold
        if self.divide_by_threshold:
            x, v_threshold = self.unit_threshold_input(x), 1.0
        leak = self._for_step(self.decay if self.tau is None else self.tau, x)
        params = LIFParameters(
            **({"decay": leak} if self.tau is None else {"tau": leak}),
            v_threshold=self._for_step(v_threshold, x),
            v_reset=self.spec.v_reset,
            reset=self.spec.reset,
            detach_reset=self.spec.detach_reset,
            detach_state=self.mode == "sltt",
            surrogate=self.spec.surrogate,
        )
        return x, params

    def unit_threshold_input(self, x: torch.Tensor) -> torch.Tensor:
        """x / v_th: the currents a neuron of threshold 1 (and the SDN) receives."""
        v_threshold = self.v_threshold
        if not isinstance(v_threshold, torch.Tensor):
            return x if v_threshold == 1.0 else x / v_threshold
        return _DivideByThreshold.apply(x, v_threshold)

    def _sdn_spikes(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input(x)
        y = self.unit_threshold_input(x).movedim(self.time_dim, -1)
        sdn = self._sdn.to(y.device, y.dtype)
        spikes = sdn_spikes(y.reshape(-1, y.shape[-1]), sdn, self.spec.surrogate)
        return spikes.reshape(y.shape).movedim(-1, self.time_dim)

    def _check_input(self, x: torch.Tensor) -> None:
        check_time_steps(x, self.time_dim)
        if self.channels is None:
            return
        if (
            x.dim() < -self.channel_dim
            or x.shape[self.channel_dim] != self.channels
            or (x.dim() + self.channel_dim) == self.time_dim % x.dim()
        ):
            raise ValueError(
                f"LIF expects {self.channels} channels along dim {self.channel_dim} of its input "
                f"(time along dim {self.time_dim}), got shape {tuple(x.shape)}"
            )

    def _for_step(self, value, x: torch.Tensor):
        """A stored parameter reshaped to broadcast against one step of x (x without time)."""
        if not isinstance(value, torch.Tensor) or value.dim() == 0:
            return value
        time_dim = self.time_dim % x.dim()
        channel_dim = x.dim() + self.channel_dim
        position = channel_dim - (1 if channel_dim > time_dim else 0)
        return value.reshape([-1 if d == position else 1 for d in range(x.dim() - 1)])

    def extra_repr(self) -> str:
        p = self.spec
        leak = f"decay={p.decay}" if p.tau is None else f"tau={p.tau}"
        return (
            f"time_dim={self.time_dim}, {leak}, reset={p.reset}, mode={self.mode}, "
            f"surrogate={p.surrogate}, channels={self.channels}"
        )


def _logit(rate: float) -> float:
    rate = min(max(rate, 1e-6), 1 - 1e-6)
    return math.log(rate / (1.0 - rate))


def lif_layers(module: nn.Module) -> dict[str, LIF]:
    """Every LIF layer inside `module`, by qualified name."""
    return {name: m for name, m in module.named_modules() if isinstance(m, LIF)}


def ssm_neurons(module: nn.Module) -> dict[str, LIF]:
    """The LIF layers inside `module` that the SDN can stand in for (SpikingSSM's neurons)."""
    return {name: m for name, m in lif_layers(module).items() if m.sdn_capable}


def set_lif_mode(module: nn.Module, mode: str | Mapping[str, str]) -> dict[str, str]:
    """Set the mode of every LIF layer in `module` (one mode, or a mode per qualified name as
    returned here) and return the previous modes, so `set_lif_mode(m, previous)` undoes it.

    Parameters never change. If a mode cannot be set (no SDN for a layer), every layer is put
    back to its previous mode before the ValueError propagates.
    """
    layers = lif_layers(module)
    if isinstance(mode, str):
        _check_mode(mode)
        targets = dict.fromkeys(layers, mode)
    else:
        unknown = sorted(set(mode) - set(layers))
        if unknown:
            raise ValueError(f"expected names of LIF layers in the module, got unknown {unknown}")
        for target in mode.values():
            _check_mode(target)
        targets = dict(mode)
    previous = {name: layer.mode for name, layer in layers.items()}
    try:
        for name, target in targets.items():
            layers[name].mode = target
    except ValueError:
        for name, old in previous.items():
            layers[name].mode = old
        raise
    return previous


@contextmanager
def lif_mode(module: nn.Module, mode: str | Mapping[str, str]) -> Iterator[dict[str, str]]:
    """Run a block of code with the LIF layers of `module` in `mode`, then restore theirs."""
    previous = set_lif_mode(module, mode)
    try:
        yield previous
    finally:
        set_lif_mode(module, previous)


def _check_mode(mode: str) -> None:
    if mode not in LIF_MODES:
        raise ValueError(f"LIF mode must be one of {LIF_MODES}, got {mode!r}")


NEURON_SCALES = ("threshold", "time")


def scale_neurons(module: nn.Module, scales: Mapping[str, Mapping[str, float]]) -> None:
    """Scale the parameters of the LIF layers named in `scales` (qualified names, as
    lif_layers gives them), every neuron of each layer alike: {"threshold": s} multiplies its
    thresholds by s, {"time": b} multiplies its time constant by b (input decay: tau -> b tau,
    at least 1; multiplicative decay: decay -> decay^(1/b), the same factor on the time
    constant of decay = exp(-1/tau)). Learned and fixed values alike; an unknown layer or
    scale, or a scale that is not a finite number > 0, is a ValueError."""
    layers = lif_layers(module)
    for name, layer_scales in scales.items():
        if name not in layers:
            raise ValueError(f"no LIF layer named {name!r}; the model has {_few(layers)}")
        unknown = sorted(set(layer_scales) - set(NEURON_SCALES))
        if unknown:
            raise ValueError(f"unknown neuron scales {unknown}; expected {list(NEURON_SCALES)}")
        for kind, value in layer_scales.items():
            if isinstance(value, bool) or not (isinstance(value, int | float) and value > 0):
                raise ValueError(f"{kind} scale of {name} must be a number > 0, got {value!r}")
            if not math.isfinite(value):
                raise ValueError(f"{kind} scale of {name} must be finite, got {value}")
        threshold, time = (layer_scales.get(kind, 1.0) for kind in NEURON_SCALES)
        _scale_layer(layers[name], threshold, time)


@torch.no_grad()
def _scale_layer(layer: LIF, threshold: float, time: float) -> None:
    if hasattr(layer, "ln_vth"):
        layer.ln_vth.add_(math.log(threshold))
    else:
        layer.spec = replace(layer.spec, v_threshold=layer.spec.v_threshold * threshold)
    if time == 1.0:
        return
    if layer.decay_form == "input":
        rate = 1.0 / (torch.as_tensor(layer.tau) * time).clamp(min=1.0)
        field = "tau"
    else:
        rate = torch.as_tensor(layer.decay) ** (1.0 / time)
        field = "decay"
    if layer.learns_decay:
        layer.decay_logit.copy_(torch.logit(rate, eps=1e-6))
    else:
        value = float(1.0 / rate) if field == "tau" else float(rate)
        layer.spec = replace(layer.spec, **{field: value})
    layer.__dict__["_sdn"] = None  # an SDN stands in for one decay only
    if layer.mode == "sdn":
        layer.mode = "bptt"


def _few(names) -> str:
    names = list(names)
    return ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")


class _DivideByThreshold(torch.autograd.Function):
    """x / v_th, with a backward that keeps the quotient (which the LIF after it keeps too)
    rather than x: d/dv_th (x / v_th) = -(x / v_th) / v_th, so the threshold's gradient is
    one product and one sum, and x can be freed."""

    generate_vmap_rule = True  # elementwise, so torch.func.vmap batches it (ES populations)

    @staticmethod
    def forward(x, v_threshold):
        return x / v_threshold

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        ctx.save_for_backward(output, inputs[1])

    @staticmethod
    def backward(ctx, grad):
        y, v_threshold = ctx.saved_tensors
        grad_x = grad / v_threshold if ctx.needs_input_grad[0] else None
        grad_threshold = None
        if ctx.needs_input_grad[1]:
            grad_threshold = -(grad * y).sum_to_size(v_threshold.shape) / v_threshold
        return grad_x, grad_threshold
