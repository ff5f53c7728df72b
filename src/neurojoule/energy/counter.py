"""Count synaptic operations and spikes of any nn.Module through forward hooks."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn

from neurojoule.energy.ops import SYNAPTIC_TYPES, SynapticMatmul, count_ops, declares_macs
from neurojoule.energy.report import EnergyReport, NeuronRow, SynapticRow
from neurojoule.energy.table import DEFAULT_TABLE, EnergyTable, get_energy_table
from neurojoule.neuron import SpikingNeuron

ROOT_NAME = "(model)"  # the key of the model itself, whose qualified name is ""

# Modules that perform MACs but are not counted; reported so that totals are not silently short.
UNCOUNTED_TYPES = (
    nn.Conv3d,
    nn.ConvTranspose1d,
    nn.ConvTranspose2d,
    nn.ConvTranspose3d,
    nn.Bilinear,
    nn.MultiheadAttention,
)


@dataclass
class _SynapticTally:
    kind: str
    calls: int = 0
    elements: int = 0
    nonzero: int = 0
    nonbinary: int = 0
    min_value: float | None = None
    max_value: float | None = None
    dense_macs: int = 0
    sops: int = 0

    def add_input(self, x: torch.Tensor) -> int:
        """Record one call's input statistics; returns its non-zero count."""
        self.calls += 1
        self.elements += x.numel()
        if x.numel() == 0:
            return 0
        flat = x.reshape(-1)
        nonzero = flat.ne(0)
        nonbinary = nonzero & flat.ne(1)
        # One device-to-host transfer for all four numbers; float64 counts are exact to 2**53.
        count, odd, low, high = torch.stack(
            [
                nonzero.sum(dtype=torch.float64),
                nonbinary.sum(dtype=torch.float64),
                flat.min().to(torch.float64),
                flat.max().to(torch.float64),
            ]
        ).tolist()
        self.nonzero += int(count)
        self.nonbinary += int(odd)
        self.min_value = low if self.min_value is None else min(self.min_value, low)
        self.max_value = high if self.max_value is None else max(self.max_value, high)
        return int(count)

    def row(self, name: str) -> SynapticRow:
        return SynapticRow(
            name=name,
            kind=self.kind,
            calls=self.calls,
            input_elements=self.elements,
            input_nonzero=self.nonzero,
            input_nonbinary=self.nonbinary,
            input_min=self.min_value,
            input_max=self.max_value,
            dense_macs=self.dense_macs,
            sops=self.sops,
        )


@dataclass
class _NeuronTally:
    kind: str
    calls: int = 0
    spikes: float = 0.0
    elements: int = 0

    def row(self, name: str) -> NeuronRow:
        return NeuronRow(name, self.kind, self.calls, self.spikes, self.elements)


class EnergyCounter:
    """Context manager that counts synaptic operations and spikes of every forward call.

    On enter it hooks every nn.Linear, nn.Conv1d, nn.Conv2d and SynapticMatmul (synaptic
    layers) and every SpikingNeuron (neuron layers) of `model`; on exit it removes the hooks.
    Counts accumulate across calls and across repeated `with` blocks until `reset()`; layers
    are keyed by qualified name (the model itself by ROOT_NAME), in first-call order.
    Counting reads inputs and outputs only and never changes them. `time_steps` (default: the
    model's `time_steps` attribute, else 1) is how many steps a direct-encoding model repeats
    each input; the same-shape ANN it is compared with runs once.
    """

    def __init__(
        self,
        model: nn.Module,
        table: str | EnergyTable = DEFAULT_TABLE,
        time_steps: int | None = None,
    ):
        if not isinstance(model, nn.Module):
            raise ValueError(f"expected an nn.Module to measure, got {type(model).__name__}")
        self.model = model
        self.table = get_energy_table(table)
        self.time_steps = getattr(model, "time_steps", 1) if time_steps is None else time_steps
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        self.reset()

    def reset(self) -> None:
        self._synaptic: dict[str, _SynapticTally] = {}
        self._neurons: dict[str, _NeuronTally] = {}
        self._uncounted: dict[str, str] = {}

    def __enter__(self) -> EnergyCounter:
        if self._handles:
            raise RuntimeError("this EnergyCounter is already active; enter it once at a time")
        for name, module in self.model.named_modules():
            hook = self._hook_for(name or ROOT_NAME, module)
            if hook is not None:
                self._handles.append(module.register_forward_hook(hook, with_kwargs=True))
        return self

    def __exit__(self, *exc_info) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def report(self, samples: int) -> EnergyReport:
        """The counts so far, for `samples` input samples (per-sample figures divide by it)."""
        return EnergyReport(
            table=self.table,
            samples=samples,
            layers=tuple(tally.row(name) for name, tally in self._synaptic.items()),
            neurons=tuple(tally.row(name) for name, tally in self._neurons.items()),
            uncounted=tuple(f"{name} ({kind})" for name, kind in self._uncounted.items()),
            time_steps=self.time_steps,
        )

    def _hook_for(self, name: str, module: nn.Module):
        if isinstance(module, SYNAPTIC_TYPES) or declares_macs(module):
            return self._synaptic_hook(name)
        if isinstance(module, SpikingNeuron):
            return self._neuron_hook(name)
        if isinstance(module, UNCOUNTED_TYPES):
            return self._uncounted_hook(name)
        return None

    def _synaptic_hook(self, name: str):
        def hook(module, args, kwargs, output):
            x = _layer_input(module, args, kwargs).detach()
            with torch.no_grad():
                tally = self._synaptic.setdefault(name, _SynapticTally(type(module).__name__))
                nonzero = tally.add_input(x)
                ops = count_ops(module, x, output, nonzero)
            tally.dense_macs += ops.dense_macs
            tally.sops += ops.sops

        return hook

    def _neuron_hook(self, name: str):
        def hook(module, args, kwargs, output):
            spikes = output[0] if isinstance(output, (tuple, list)) else output
            with torch.no_grad():
                total = spikes.detach().sum(dtype=torch.float64).item()
            tally = self._neurons.setdefault(name, _NeuronTally(type(module).__name__))
            tally.calls += 1
            tally.spikes += total
            tally.elements += spikes.numel()

        return hook

    def _uncounted_hook(self, name: str):
        def hook(module, args, kwargs, output):
            self._uncounted.setdefault(name, type(module).__name__)

        return hook


def _layer_input(module: nn.Module, args: tuple, kwargs: dict) -> torch.Tensor:
    keyword = "a" if isinstance(module, SynapticMatmul) else "input"
    return args[0] if args else kwargs[keyword]


def measure_energy(
    model: nn.Module,
    batches: Iterable[torch.Tensor],
    *,
    table: str | EnergyTable = DEFAULT_TABLE,
    batch_dim: int = 0,
    time_steps: int | None = None,
) -> EnergyReport:
    """Run model(batch) under torch.no_grad for every batch and report the counts.

    Each batch is a tensor passed to the model as is; it holds batch.shape[batch_dim] samples
    (time-first vision SNNs take [T, B, ...] and pass batch_dim=1). The model's train/eval mode
    is left as it is: call model.eval() first to measure inference.
    """
    counter = EnergyCounter(model, table, time_steps)
    samples = 0
    with counter, torch.no_grad():
        for batch in batches:
            samples += _batch_size(batch, batch_dim)
            model(batch)
    return counter.report(samples)


def _batch_size(batch: torch.Tensor, batch_dim: int) -> int:
    if not isinstance(batch, torch.Tensor):
        raise ValueError(
            f"expected each batch to be a tensor passed to the model, got {type(batch).__name__}"
        )
    if not -batch.dim() <= batch_dim < batch.dim():
        raise ValueError(
            f"batch_dim {batch_dim} is out of range for a batch of shape {tuple(batch.shape)}"
        )
    return batch.shape[batch_dim]
