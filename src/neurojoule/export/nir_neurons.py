"""How neurojoule's discrete LIF neurons map onto NIR's continuous neuron nodes, both ways.

NIR's LIF is continuous: tau dv/dt = (v_leak - v) + R I, a spike when v > v_threshold, then
v = v_reset. A graph written here is read as one forward-Euler step of length `dt` per time
step (dt is stored in the graph's metadata):

    v <- v + dt/tau (v_leak - v + R I)

Our two decay forms are that step with v_leak = 0:
    input decay           h = u + (x - u) / tau_d      tau = tau_d dt,        R = 1
    multiplicative decay  h = lam u + x                tau = dt / (1 - lam),  R = tau / dt
and a decay of exactly 1 (no leak) is NIR's IF node with R = 1 / dt. A neuron that divides its
input by its threshold (SpikingSSM: LIF(y / v_th; 1)) keeps threshold 1 and takes 1 / v_th
into R. Each LIF node records which form it came from (metadata FORM_KEY), so that an import
rebuilds the same arithmetic; a node without it (another framework's) imports in the
multiplicative form, lam = 1 - dt/tau with the input scaled by dt R / tau.

Thresholds: we spike at h >= v_th, NIR at v > v_threshold. Written, v_threshold is the largest
float32 below our float32 threshold, so for float32 potentials v > v_threshold exactly when
v >= v_th; read, a threshold becomes the smallest float32 above it. The round trip returns the
same float32 threshold, and the spikes are the same bit for bit. Soft reset (subtracting the
threshold) has no NIR node and is refused.

Leaks and resistances are written in float64, computed from the float32 values the neurons
run with, so that reading them back rounds to those same float32 values.
"""

from __future__ import annotations

import math

import nir
import numpy as np
import torch
from torch import nn

from neurojoule.neuron import LIF, LIFParameters, SpikingNeuron, lif

FORM_KEY = "neurojoule.decay_form"
FORMS = ("input", "multiplicative")


# ---- thresholds ---------------------------------------------------------------------------


def nir_threshold(threshold: np.ndarray) -> np.ndarray:
    """NIR's v_threshold for our float32 threshold: the largest float32 below it (float64)."""
    below = np.nextafter(threshold.astype(np.float32), np.float32(-np.inf))
    return below.astype(np.float64)


def our_threshold(v_threshold: np.ndarray) -> np.ndarray:
    """Our float32 threshold for NIR's v_threshold: the smallest float32 above it, so that
    h >= it exactly when h > v_threshold for float32 h."""
    value = np.asarray(v_threshold, dtype=np.float64)
    rounded = value.astype(np.float32)
    not_above = rounded.astype(np.float64) <= value
    return np.where(not_above, np.nextafter(rounded, np.float32(np.inf)), rounded)


# ---- export -------------------------------------------------------------------------------


def neuron_node(layer: LIF, shape: tuple[int, ...], dt: float, name: str) -> nir.NIRNode:
    """The NIR node (LIF, or IF for a decay of 1) of a LIF layer whose neurons, one step of
    them, have `shape`; per-channel parameters lie along the first axis of `shape`."""
    spec = layer.spec
    if layer.channels is not None:
        # the channel axis among one step's dims: [T, B, *shape] (time first) or [B, *shape, L]
        axis = len(shape) + layer.channel_dim + (1 if layer.time_dim == -1 else 0)
        if axis != 0:
            raise ValueError(
                f"cannot export LIF layer {name!r}: its per-channel parameters lie along dim "
                f"{layer.channel_dim}, expected the first of one step's dims {list(shape)}"
            )
    if spec.reset != "hard":
        raise ValueError(
            f"cannot export LIF layer {name!r} to NIR: it resets by subtracting the threshold "
            "(reset='soft'), and NIR's neurons only reset to v_reset (expected reset='hard')"
        )
    threshold = _per_neuron32(layer.v_threshold, shape, name)
    divisor = np.ones(shape, dtype=np.float32)
    if layer.divide_by_threshold:
        divisor, threshold = threshold, np.ones(shape, dtype=np.float32)
    common = {
        "v_threshold": nir_threshold(threshold),
        "v_reset": np.full(shape, float(spec.v_reset), dtype=np.float64),
    }
    with np.errstate(divide="ignore"):
        gain = 1.0 / divisor.astype(np.float64)  # R of a unit-gain neuron, times 1 / v_th
    if layer.decay_form == "input":
        tau = _per_neuron32(layer.tau, shape, name).astype(np.float64) * dt
        metadata = {FORM_KEY: "input"}
        return nir.LIF(tau=tau, r=gain, v_leak=np.zeros(shape), **common, metadata=metadata)
    decay = _per_neuron32(layer.decay, shape, name).astype(np.float64)
    if np.all(decay == 1.0):
        return nir.IF(r=gain / dt, **common, metadata={FORM_KEY: "multiplicative"})
    if np.any(decay == 1.0):
        raise ValueError(
            f"cannot export LIF layer {name!r} to NIR: some of its neurons have decay 1 (no "
            "leak, NIR's IF) and some below 1 (NIR's LIF); expected one kind per layer"
        )
    tau = dt / (1.0 - decay)
    metadata = {FORM_KEY: "multiplicative"}
    return nir.LIF(tau=tau, r=tau / dt * gain, v_leak=np.zeros(shape), **common, metadata=metadata)


def _per_neuron32(value, shape: tuple[int, ...], name: str) -> np.ndarray:
    """A layer parameter (a float, a scalar or a per-channel tensor) as float32 per neuron."""
    tensor = torch.as_tensor(value).detach().to(torch.float32).cpu()
    if tensor.numel() == 1:
        return np.full(shape, tensor.item(), dtype=np.float32)
    values = tensor.reshape(-1)
    if values.numel() != shape[0] or tensor.squeeze().dim() != 1:
        raise ValueError(
            f"cannot export LIF layer {name!r}: expected one parameter per neuron or per "
            f"channel (the first of {list(shape)}), got a tensor of shape {list(tensor.shape)}"
        )
    column = values.numpy().reshape((-1,) + (1,) * (len(shape) - 1))
    return np.ascontiguousarray(np.broadcast_to(column, shape))


# ---- import -------------------------------------------------------------------------------


class NIRNeuron(SpikingNeuron):
    """NIR's LIF or IF node as our LIF: time-first input [T, B, *shape] -> spikes.

    The input current I becomes x = I / divisor + offset (skipped where they are 1 and 0),
    then the hard-reset LIF of `form` runs with `leak` (decay or tau), `v_threshold` (ours:
    fires at >=) and `v_reset`, from rest (v = 0).
    """

    def __init__(self, form, leak, v_threshold, v_reset: float, divisor=None, offset=None):
        super().__init__()
        self.form, self.v_reset = form, v_reset
        self.register_buffer("leak", torch.as_tensor(leak, dtype=torch.float32))
        self.register_buffer("v_threshold", torch.as_tensor(v_threshold, dtype=torch.float32))
        self.register_buffer("divisor", _optional(divisor))
        self.register_buffer("offset", _optional(offset))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _input_current(x, self.divisor, self.offset)
        leak = {"tau": self.leak} if self.form == "input" else {"decay": self.leak}
        params = LIFParameters(**leak, v_threshold=self.v_threshold, v_reset=self.v_reset)
        return lif(x, params, time_dim=0)[0]

    def extra_repr(self) -> str:
        return f"form={self.form}, shape={list(self.leak.shape)}, v_reset={self.v_reset}"


class LeakyIntegrator(nn.Module):
    """NIR's LI or I node: v <- decay v + I / divisor + offset from v = 0, output v at every
    step; time-first input [T, B, *shape]."""

    def __init__(self, decay, divisor=None, offset=None):
        super().__init__()
        self.register_buffer("decay", torch.as_tensor(decay, dtype=torch.float32))
        self.register_buffer("divisor", _optional(divisor))
        self.register_buffer("offset", _optional(offset))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _input_current(x, self.divisor, self.offset)
        v = torch.zeros_like(x[0])
        steps = []
        for x_t in x:
            v = self.decay * v + x_t
            steps.append(v)
        return torch.stack(steps)


def _optional(values) -> torch.Tensor | None:
    return None if values is None else torch.as_tensor(values, dtype=torch.float32)


def _input_current(x, divisor, offset) -> torch.Tensor:
    if divisor is not None:
        x = x / divisor
    if offset is not None:
        x = x + offset
    return x


def neuron_module(node: nir.NIRNode, dt: float, name: str) -> nn.Module:
    """Our module for a NIR LIF, IF, LI or I node, stepped by forward Euler with step dt."""
    if isinstance(node, (nir.LIF, nir.IF)):
        form = str((node.metadata or {}).get(FORM_KEY, "multiplicative"))
        if form not in FORMS:
            raise ValueError(
                f"NIR node {name!r}: metadata {FORM_KEY} must be one of {FORMS}, got {form!r}"
            )
        reset = _array(node.v_reset, name, "v_reset")
        if reset.size and np.any(reset != reset.flat[0]):
            raise ValueError(
                f"NIR node {name!r} has a different v_reset per neuron; expected one value"
            )
        threshold = our_threshold(_array(node.v_threshold, name, "v_threshold"))
        reset_value = float(reset.flat[0]) if reset.size else 0.0
        if isinstance(node, nir.IF):
            leak, divisor, offset = _integrator(node, dt, name)
            return NIRNeuron("multiplicative", leak, threshold, reset_value, divisor, offset)
        leak, divisor, offset = _leaky(node, dt, name, form)
        return NIRNeuron(form, leak, threshold, reset_value, divisor, offset)
    if isinstance(node, nir.LI):
        return LeakyIntegrator(*_leaky(node, dt, name, "multiplicative"))
    if isinstance(node, nir.I):
        return LeakyIntegrator(*_integrator(node, dt, name))
    raise TypeError(f"not a NIR neuron node: {type(node).__name__}")


def _leaky(node, dt: float, name: str, form: str):
    """(leak, divisor, offset) of an Euler step of tau dv/dt = v_leak - v + R I."""
    tau = _array(node.tau, name, "tau")
    r = _array(node.r, name, "r")
    v_leak = _array(node.v_leak, name, "v_leak")
    if tau.size and float(tau.min()) < dt:
        raise ValueError(
            f"NIR node {name!r} has tau {float(tau.min()):g} below the time step dt={dt:g}; a "
            "forward-Euler step needs tau >= dt (import with the dt the graph was made for)"
        )
    with np.errstate(divide="ignore", invalid="ignore"):
        if form == "input":  # v <- v + (x - v) / (tau / dt), x = R I + v_leak
            return tau / dt, _unless_all(1.0 / r, 1.0), _unless_all(v_leak, 0.0)
        # v <- (1 - dt/tau) v + x, x = (dt R / tau) I + dt v_leak / tau
        return 1.0 - dt / tau, _unless_all(tau / (dt * r), 1.0), _unless_all(dt * v_leak / tau, 0.0)


def _integrator(node, dt: float, name: str):
    """(leak, divisor, offset) of an Euler step of dv/dt = R I: v <- v + dt R I."""
    r = _array(node.r, name, "r")
    with np.errstate(divide="ignore"):
        return np.ones_like(r), _unless_all(1.0 / (dt * r), 1.0), None


def _unless_all(values: np.ndarray, neutral: float) -> np.ndarray | None:
    """float32 `values`, or None when every one of them is `neutral` (nothing to apply)."""
    values32 = values.astype(np.float32)
    return None if np.all(values32 == neutral) else values32


def _array(values, name: str, field: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(array)):
        raise ValueError(f"NIR node {name!r}: {field} must be finite, got {array.ravel()[:4]}")
    return array


def check_dt(dt: float) -> float:
    """A ValueError unless dt is a finite number > 0."""
    if isinstance(dt, bool) or not isinstance(dt, (int, float, np.floating, np.integer)):
        raise ValueError(f"dt must be a number > 0, got {dt!r}")
    if not (math.isfinite(float(dt)) and float(dt) > 0):
        raise ValueError(f"dt must be a finite number > 0, got {dt}")
    return float(dt)
