"""Weight entanglement: one model of a registry family at its largest size runs every smaller
member of the family as the leading slices of its own tensors.

A member ("subnet") is given by the model options that differ from the largest ones (for
Spikformer: embed_dim, depth, heads, mlp_ratio, v_threshold, tau, steps). Each of its weights
and batch-norm statistics is the leading slice of the supernet's tensor of the same name,
W[:out, :in, ...], b[:out], running_mean[:dim]; blocks beyond its depth have no tensors in
the subnet and are skipped. The subnet runs as the registry's own class, built without
storage (on the meta device) and called with the sliced tensors (torch.func.functional_call),
so every structural choice (heads, hidden width, depth, time steps, neuron settings) takes
effect exactly as in a standalone model; `extract` copies the same slices into a standalone
model. In training mode the batch norms update the slices of the supernet's statistics in
place, and gradients reach the supernet's weights through the slices.

Without gradients (evaluation), a subnet runs as a module bound once to views of the
supernet's tensors and kept: views share storage, so they follow every in-place update of the
weights, and calling it costs what calling the standalone network costs. (With gradients the
views are made anew at each call: a view's autograd record serves one backward pass.)
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn
from torch.func import functional_call

from neurojoule.models.registry import build_model


def _frozen(value):
    """A hashable form of a model option (lists become tuples)."""
    if isinstance(value, list | tuple):
        return tuple(_frozen(v) for v in value)
    return value


class ElasticModel(nn.Module):
    """The registry model `name` built with `largest` options; runs and extracts subnets."""

    def __init__(self, name: str, largest: Mapping):
        super().__init__()
        self.name = name
        self.largest = dict(largest)
        self.supernet = build_model(name, **self.largest)
        self._plans: dict[tuple, tuple[nn.Module, list]] = {}
        self._bound: dict[tuple, nn.Module] = {}

    def options(self, subnet: Mapping) -> dict:
        """The full model options of a subnet: the largest options with the subnet's on top
        (an option the family does not have fails when the subnet is built)."""
        return {**self.largest, **subnet}

    def template(self, subnet: Mapping) -> nn.Module:
        """The subnet's module without storage (cached): its structure, not its weights."""
        return self._plan(subnet)[0]

    def sliced_state(self, subnet: Mapping) -> dict[str, torch.Tensor]:
        """Every parameter and buffer of the subnet as a view of the supernet's tensor of the
        same name: its leading slice along each dimension."""
        return {name: source[slices] for name, source, slices in self._plan(subnet)[1]}

    def _plan(self, subnet: Mapping) -> tuple[nn.Module, list]:
        """The subnet's template and, per tensor of it, the supernet tensor and the slices it
        takes; both cached per subnet (building them costs more than a small forward)."""
        options = self.options(subnet)
        key = self._key(subnet)
        if key not in self._plans:
            with torch.device("meta"):
                template = build_model(self.name, **options)
            self._plans[key] = (template, self._slices(template, subnet))
        template, slices = self._plans[key]
        template.train(self.training)
        return template, slices

    def _key(self, subnet: Mapping) -> tuple:
        return tuple(sorted((k, _frozen(v)) for k, v in self.options(subnet).items()))

    def _slices(self, template: nn.Module, subnet: Mapping) -> list:
        full = dict(self.supernet.named_parameters())
        full.update(self.supernet.named_buffers())
        plan = []
        for name, tensor in [*template.named_parameters(), *template.named_buffers()]:
            source = full.get(name)
            shape = tuple(tensor.shape)
            if (
                source is None
                or source.dim() != len(shape)
                or any(size > limit for size, limit in zip(shape, source.shape, strict=True))
            ):
                raise ValueError(
                    f"subnet {dict(subnet)} does not fit in the supernet: its {name} has shape "
                    f"{list(shape)}, the supernet's "
                    f"{'none' if source is None else list(source.shape)}"
                )
            plan.append((name, source, tuple(slice(0, size) for size in shape)))
        return plan

    def forward(self, x: torch.Tensor, subnet: Mapping | None = None) -> torch.Tensor:
        """The subnet's output for `x` (the largest subnet's when None)."""
        if subnet is None:
            return self.supernet(x)
        if not torch.is_grad_enabled():
            return self.bound(subnet)(x)
        return functional_call(self.template(subnet), self.sliced_state(subnet), (x,))

    def bound(self, subnet: Mapping) -> nn.Module:
        """The subnet as a module whose tensors are views of the supernet's (made without
        gradients, kept per subnet): what runs the subnet when gradients are off."""
        key = self._key(subnet)
        if key not in self._bound:
            with torch.device("meta"):
                module = build_model(self.name, **self.options(subnet))
            with torch.no_grad():
                for name, view in self.sliced_state(subnet).items():
                    owner_name, _, attribute = name.rpartition(".")
                    owner = module.get_submodule(owner_name)
                    if attribute in owner._parameters:
                        del owner._parameters[attribute]  # a plain tensor attribute instead
                        setattr(owner, attribute, view)
                    else:
                        owner._buffers[attribute] = view
            self._bound[key] = module
        return self._bound[key].train(self.training)

    def _apply(self, fn, recurse=True):
        # moving or casting the supernet replaces its tensors: views made before are stale
        self._bound.clear()
        self._plans.clear()
        return super()._apply(fn, recurse)

    @torch.no_grad()
    def extract(self, subnet: Mapping) -> nn.Module:
        """A standalone model of the registry's class holding copies of the subnet's slices."""
        like = next(self.supernet.parameters())  # the supernet's dtype and device
        model = build_model(self.name, **self.options(subnet)).to(like)
        model.load_state_dict({k: v.clone() for k, v in self.sliced_state(subnet).items()})
        return model.train(self.training)
