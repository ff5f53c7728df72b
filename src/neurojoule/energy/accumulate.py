"""Accumulate-only synapses: layers whose binary input selects weights to add, never multiply.

With spikes in {0, 1}, a Linear's output is its bias plus the sum of the weight columns of
the inputs that spiked, and a convolution's output at each position is its bias plus the
sum of the weight columns of the kernel taps that read a spike. These modules compute exactly
that with gathers and index_add_ (no matmul, no product with the input), which is what a
multiplication-free (MFI) implementation does, and refuse any non-binary input.

`accumulate_only(model, example_input)` runs the example through a copy of the model, and
swaps every nn.Linear / nn.Conv1d / nn.Conv2d that received binary input only for its
accumulate-only twin; layers that saw real values (e.g. the first one, reading the image)
stay dense.

AccumulateLinear subclasses nn.Linear and AccumulateConv1d / AccumulateConv2d subclass
nn.Conv1d / nn.Conv2d (both also AccumulateConv), so the EnergyCounter hooks and counts
them as the synaptic layers they are. They compute no gradient with respect to their input.
"""

from __future__ import annotations

import copy
import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from neurojoule.energy.counter import ROOT_NAME, EnergyCounter

# Gathered weight rows held at once: bounds memory for large, dense spike maps.
_MAX_GATHERED_ELEMENTS = 1 << 22


class AccumulateLinear(nn.Linear):
    """nn.Linear for binary input: out = bias + sum of weight[:, j] over inputs j that are 1."""

    @classmethod
    def from_dense(cls, linear: nn.Linear) -> AccumulateLinear:
        """The accumulate-only twin of `linear`, sharing its parameters."""
        layer = cls(
            linear.in_features,
            linear.out_features,
            bias=linear.bias is not None,
            device="meta",
        )
        layer.weight, layer.bias = linear.weight, linear.bias
        return layer

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if input.shape[-1:] != (self.in_features,):
            raise ValueError(
                f"AccumulateLinear expects input [..., {self.in_features}], "
                f"got {tuple(input.shape)}"
            )
        _require_binary(input, type(self).__name__)
        active = input.reshape(-1, self.in_features).ne(0)
        out = _accumulate(active, self.weight.t(), self.bias, self.out_features)
        return out.reshape(*input.shape[:-1], self.out_features)


class AccumulateConv:
    """Mixin of AccumulateConv1d / AccumulateConv2d: a convolution of binary input by sums.

    Any stride, padding (numbers, 'valid' or 'same') and dilation; groups=1 and zero padding
    only. The input is cut into patches (the taps each output position reads); each output
    position gets the bias plus the weight columns of its taps that hold a spike.
    """

    @staticmethod
    def from_dense(conv: nn.Conv1d | nn.Conv2d) -> AccumulateConv1d | AccumulateConv2d:
        """The accumulate-only twin of `conv`, sharing its parameters."""
        if isinstance(conv, nn.Conv2d):
            cls = AccumulateConv2d
        elif isinstance(conv, nn.Conv1d):
            cls = AccumulateConv1d
        else:
            raise ValueError(f"expected an nn.Conv1d or nn.Conv2d, got {type(conv).__name__}")
        if conv.groups != 1 or conv.padding_mode != "zeros":
            raise ValueError(
                "accumulate-only convolutions support groups=1 and padding_mode='zeros', got "
                f"groups={conv.groups}, padding_mode='{conv.padding_mode}'"
            )
        layer = cls(
            conv.in_channels,
            conv.out_channels,
            conv.kernel_size,
            stride=conv.stride,
            padding=conv.padding,
            dilation=conv.dilation,
            bias=conv.bias is not None,
            device="meta",
        )
        layer.weight, layer.bias = conv.weight, conv.bias
        return layer

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        spatial = len(self.kernel_size)
        name = type(self).__name__
        if input.dim() not in (spatial + 1, spatial + 2) or input.shape[-spatial - 1] != (
            self.in_channels
        ):
            raise ValueError(
                f"{name} expects input [N, {self.in_channels}, {spatial} spatial dims] "
                f"(N optional), got {tuple(input.shape)}"
            )
        _require_binary(input, name)
        batched = input if input.dim() == spatial + 2 else input[None]
        patches, out_size = self._patches(batched.to(self.weight.dtype))
        samples, taps, positions = patches.shape
        active = patches.transpose(1, 2).reshape(-1, taps).ne(0)
        table = self.weight.reshape(self.out_channels, taps).t()
        out = _accumulate(active, table, self.bias, self.out_channels)
        out = out.reshape(samples, positions, self.out_channels).transpose(1, 2)
        out = out.reshape(samples, self.out_channels, *out_size)
        return out if input.dim() == spatial + 2 else out[0]

    def _patches(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, ...]]:
        """[N, C * prod(kernel), positions] (F.unfold's order, the weight's too), output size."""
        x = F.pad(x, self._reversed_padding_repeated_twice)
        kernel, stride, dilation = self.kernel_size, self.stride, self.dilation
        out_size = tuple(
            (size - d * (k - 1) - 1) // s + 1
            for size, k, s, d in zip(x.shape[2:], kernel, stride, dilation, strict=True)
        )
        if len(kernel) == 1:  # a 1-d convolution is a 2-d one over a single row
            x, kernel, stride, dilation = x[:, :, None], (1, *kernel), (1, *stride), (1, *dilation)
        if math.prod(out_size) <= 0:
            raise ValueError(
                f"{type(self).__name__} with kernel {self.kernel_size} and dilation "
                f"{self.dilation} expects a larger input than {tuple(x.shape)} (padded)"
            )
        patches = F.unfold(x, kernel, dilation=dilation, stride=stride)
        return patches, out_size


class AccumulateConv1d(AccumulateConv, nn.Conv1d):
    """nn.Conv1d for binary input, by additions only (see AccumulateConv)."""


class AccumulateConv2d(AccumulateConv, nn.Conv2d):
    """nn.Conv2d for binary input, by additions only (see AccumulateConv)."""


def _require_binary(x: torch.Tensor, name: str) -> None:
    odd = x.ne(0) & x.ne(1)
    if odd.any():
        values = x[odd].double()
        raise ValueError(
            f"{name} expects binary input (spikes in {{0, 1}}), got {int(odd.sum())} other "
            f"values in [{values.min().item():g}, {values.max().item():g}]"
        )


def _accumulate(
    active: torch.Tensor, table: torch.Tensor, bias: torch.Tensor | None, width: int
) -> torch.Tensor:
    """Row r of the result: bias + sum of table[j] over the j where active[r, j] is True."""
    if bias is None:
        out = table.new_zeros(active.shape[0], width)
    else:
        out = bias.expand(active.shape[0], width).clone()
    rows, columns = active.nonzero(as_tuple=True)
    chunk = max(1, _MAX_GATHERED_ELEMENTS // max(width, 1))
    for start in range(0, rows.numel(), chunk):
        stop = start + chunk
        out.index_add_(0, rows[start:stop], table[columns[start:stop]])
    return out


class AccumulateOnly(NamedTuple):
    """What accumulate_only returns: the converted copy and which layers it converted."""

    model: nn.Module  # a deep copy in eval mode
    replaced: list[str]  # qualified names now accumulate-only
    dense: list[str]  # Linear / Conv1d / Conv2d left dense (non-binary, unused or unsupported)


_DENSE_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d)


def accumulate_only(model: nn.Module, example_input) -> AccumulateOnly:
    """A copy of `model` (eval mode) whose binary-input synapses accumulate instead of multiply.

    `example_input` (a tensor, or a tuple of positional arguments) is run once through the
    copy under torch.no_grad; every layer of exact type nn.Linear, nn.Conv1d or nn.Conv2d that
    was called and only ever saw values in {0, 1} is replaced (wherever it is registered).
    Subclasses of those types are left alone, as their forward may differ.
    """
    converted = copy.deepcopy(model).eval()
    binary = _binary_input_layers(converted, example_input)
    twins: dict[int, nn.Module] = {}
    replaced, dense = [], []
    for name, module in converted.named_modules():
        if type(module) not in _DENSE_TYPES:
            continue
        if name in binary and _supported(module):
            twins[id(module)] = _twin(module)
            replaced.append(name)
        else:
            dense.append(name)
    converted = _swap(converted, twins)
    return AccumulateOnly(converted, replaced, dense)


def _binary_input_layers(model: nn.Module, example_input) -> set[str]:
    args = example_input if isinstance(example_input, tuple) else (example_input,)
    with EnergyCounter(model) as counter, torch.no_grad():
        model(*args)
    rows = counter.report(samples=1).layers
    return {"" if row.name == ROOT_NAME else row.name for row in rows if row.binary}


def _supported(module: nn.Module) -> bool:
    if isinstance(module, nn.Linear):
        return True
    return module.groups == 1 and module.padding_mode == "zeros"


def _twin(module: nn.Module) -> nn.Module:
    if isinstance(module, nn.Linear):
        return AccumulateLinear.from_dense(module)
    return AccumulateConv.from_dense(module)


def _swap(model: nn.Module, twins: dict[int, nn.Module]) -> nn.Module:
    """Replace every registration of each module in `twins` (shared modules included)."""
    for parent in list(model.modules()):
        for key, child in list(parent._modules.items()):
            if child is not None and id(child) in twins:
                setattr(parent, key, twins[id(child)])
    return twins.get(id(model), model)
