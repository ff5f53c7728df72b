"""Fold inference-mode batch norms into the synaptic layers next to them.

At inference a batch norm with running statistics is a fixed affine map per channel,
y = scale * x + shift, with scale = gamma / sqrt(running_var + eps) and
shift = beta - running_mean * scale (gamma = 1, beta = 0 without affine parameters). Folding
it into the layer before (or, for a classifier head, after) it leaves synapses that read
spikes with no normalisation between them: multiplication-free inference.

`fold_batchnorm(model)` returns a folded deep copy in eval mode; the model is never modified.
Inside every nn.Sequential of the model (any nesting), over consecutive children:

1. Conv1d / Conv2d / Linear, then BatchNorm1d / BatchNorm2d: the BN is folded into the
   layer's output channels (the layer gains a bias if it had none). For Linear + BatchNorm1d
   the BN normalises the Linear's out_features (inputs [N, features]).
2. A module with the folding protocol (below), then a BN: the module's own fold replaces it.
3. The classifier head: a BN, then only AdaptiveAvgPool1d/2d with output size 1, AvgPool1d/2d,
   Flatten, Identity or Dropout, then a Linear whose in_features equals the BN's num_features
   (the pooling leaves one value per channel). Averaging commutes with a per-channel affine
   map, so the BN folds into the Linear's input: W' = W * scale[None, :], b' = b + W @ shift.
   Likewise a BN followed (through Identity or Dropout only) by a 1x1 Conv1d/Conv2d without
   padding or groups, which is a Linear over channels at each position.

Every folded BN is replaced by nn.Identity. A BN that matches no rule, has no running
statistics, or would fold into a layer registered in more than one place (a fold would change
every use of it) stays, in eval mode; `unfolded_batchnorms(model)` lists the qualified names
of the batch norms left in a model, so a caller can require an empty list.

Folding protocol, for custom synapses (e.g. a token-mixing layer in layers/) that energy/
cannot import: a module that defines

    def fold_batchnorm(self, bn: nn.BatchNorm1d | nn.BatchNorm2d) -> nn.Module

returns a module that computes bn(self(x)) with bn in eval mode (bn's running statistics, eps
and affine parameters). It may return a new module or itself, changed;
`neurojoule.util.batchnorm.fold_into_weights` computes the folded weight and bias, as it does
for rules 1 and 2 here. It is only called on the folded copy.

Folds are computed in float64 and cast back to each parameter's dtype.
"""

from __future__ import annotations

import copy
from collections import Counter

import torch
from torch import nn

from neurojoule.util.batchnorm import batchnorm_affine, fold_into_weights

FOLD_METHOD = "fold_batchnorm"

FOLDABLE_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d)
ALL_BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)
_OUTPUT_SYNAPSES = (nn.Conv1d, nn.Conv2d, nn.Linear)
_POOLS = (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AvgPool1d, nn.AvgPool2d)
_PASS_THROUGH = (nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d)


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """A deep copy of `model` in eval mode with every foldable batch norm folded away.

    See the module docstring for the rules and the protocol for custom layers; the batch
    norms left unfolded are listed by `unfolded_batchnorms(result)`.
    """
    folded = copy.deepcopy(model).eval()
    _fold_tree(folded, _Folding(folded))
    return folded


def unfolded_batchnorms(model: nn.Module) -> list[str]:
    """Qualified names of the batch norm modules in `model` ('' for the model itself)."""
    return [name for name, module in model.named_modules() if isinstance(module, ALL_BATCHNORMS)]


def fold_into_output(
    layer: nn.Conv1d | nn.Conv2d | nn.Linear, bn: nn.BatchNorm1d | nn.BatchNorm2d
) -> None:
    """layer(x) -> bn(layer(x)) with bn in eval mode, in place (a bias is added if none)."""
    weight, bias = fold_into_weights(layer.weight, layer.bias, bn)
    with torch.no_grad():
        layer.weight.copy_(weight)
        _set_bias(layer, bias)


def fold_into_input(
    linear: nn.Linear | nn.Conv1d | nn.Conv2d, bn: nn.BatchNorm1d | nn.BatchNorm2d
) -> None:
    """linear(x) -> linear(bn(x)) over the input features (channels of a 1x1 conv) with bn in
    eval mode, in place (a bias is added if none)."""
    scale, shift = batchnorm_affine(bn)
    weight = linear.weight
    with torch.no_grad():
        dense = weight.double().flatten(1)  # a 1x1 conv's [out, in, 1, 1] as [out, in]
        old_bias = 0.0 if linear.bias is None else linear.bias.double()
        new_bias = old_bias + dense @ shift
        weight.copy_((dense * scale[None, :]).view_as(weight))
        _set_bias(linear, new_bias)


def _set_bias(layer: nn.Module, value: torch.Tensor) -> None:
    weight = layer.weight
    value = value.to(dtype=weight.dtype, device=weight.device)
    if layer.bias is None:
        layer.bias = nn.Parameter(value, requires_grad=weight.requires_grad)
    else:
        layer.bias.copy_(value)


class _Folding:
    """Names for error messages, and the layers registered in more than one place: a fold
    would change every use of such a layer, so none is folded into and their BNs stay."""

    def __init__(self, model: nn.Module):
        self.names = {id(module): name for name, module in model.named_modules()}
        uses = Counter(
            id(child) for module in model.modules() for child in module._modules.values()
        )
        self.shared = {key for key, count in uses.items() if count > 1}

    def name(self, module: nn.Module) -> str:
        return f"{type(module).__name__} '{self.names.get(id(module), '?')}'"


def _fold_tree(module: nn.Module, folding: _Folding) -> None:
    for child in module.children():
        _fold_tree(child, folding)
    if isinstance(module, nn.Sequential):
        _fold_sequential(module, folding)


def _fold_sequential(seq: nn.Sequential, folding: _Folding) -> None:
    keys = list(seq._modules)
    for i, key in enumerate(keys):
        bn = seq._modules[key]
        if not _foldable(bn):
            continue
        before = seq._modules[keys[i - 1]] if i > 0 else None
        if before is not None and _fold_after(seq, keys[i - 1], before, bn, folding):
            setattr(seq, key, nn.Identity())
            continue
        head = _head_linear(bn, [seq._modules[k] for k in keys[i + 1 :]])
        if head is not None and id(head) not in folding.shared:
            fold_into_input(head, bn)
            setattr(seq, key, nn.Identity())


def _foldable(module: nn.Module | None) -> bool:
    return isinstance(module, FOLDABLE_NORMS) and module.running_mean is not None


def _fold_after(seq, key: str, layer: nn.Module, bn, folding: _Folding) -> bool:
    """Fold `bn` into `layer` (child `key` of `seq`) by rule 2 or 1 (the protocol wins)."""
    fold = getattr(layer, FOLD_METHOD, None)
    is_synapse = isinstance(layer, _OUTPUT_SYNAPSES)
    if id(layer) in folding.shared or not (callable(fold) or is_synapse):
        return False
    if callable(fold):
        setattr(seq, key, fold(bn))
        return True
    channels = layer.out_features if isinstance(layer, nn.Linear) else layer.out_channels
    if bn.num_features != channels:
        raise ValueError(
            f"{folding.name(bn)} has {bn.num_features} features but the {folding.name(layer)} "
            f"before it has {channels} output channels"
        )
    fold_into_output(layer, bn)
    return True


def _head_linear(bn, following: list[nn.Module]) -> nn.Module | None:
    """The Linear (or 1x1 conv) that `bn` may fold into under rule 3, or None."""
    flattened, pooled = False, False
    for module in following:
        if isinstance(module, (nn.Conv1d, nn.Conv2d)):
            return module if not (flattened or pooled) and _pointwise(module, bn) else None
        if isinstance(module, nn.Linear):
            # A BN over [N, C, ...] reaches a Linear over channels only once it is flattened.
            needs_flatten = pooled or isinstance(bn, nn.BatchNorm2d)
            channels_match = module.in_features == bn.num_features
            return module if channels_match and (flattened or not needs_flatten) else None
        if isinstance(module, _POOLS) and not flattened and _true_average(module):
            pooled = True
        elif isinstance(module, nn.Flatten) and module.start_dim == 1 and module.end_dim == -1:
            flattened = True
        elif not isinstance(module, _PASS_THROUGH):
            return None
    return None


def _true_average(pool: nn.Module) -> bool:
    """Each output is a plain mean of BN outputs (no zero padding counted, no custom divisor)."""
    if isinstance(pool, (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d)):
        size = pool.output_size
        return all(s == 1 for s in (size if isinstance(size, tuple) else (size,)))
    padding = pool.padding if isinstance(pool.padding, tuple) else (pool.padding,)
    no_padding_counted = all(p == 0 for p in padding) or not pool.count_include_pad
    return no_padding_counted and getattr(pool, "divisor_override", None) is None


def _pointwise(conv: nn.Conv1d | nn.Conv2d, bn) -> bool:
    """A conv that is a Linear over the BN's channels at each position."""
    return (
        all(k == 1 for k in conv.kernel_size)
        and all(p == 0 for p in conv.padding)
        and conv.groups == 1
        and conv.in_channels == bn.num_features
        and conv.padding_mode == "zeros"
    )
