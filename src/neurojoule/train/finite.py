"""Non-finite numbers (NaN, Inf) stop training and evaluation with a one-line error that names
the tensor or the layer, instead of turning into a confident accuracy."""

from __future__ import annotations

import torch
from torch import nn


def check_finite(tensor: torch.Tensor, what: str) -> None:
    """ValueError naming `what` when a floating-point `tensor` holds NaN or Inf."""
    if not tensor.is_floating_point():
        return
    finite = torch.isfinite(tensor)
    if not finite.all():
        bad = tensor.numel() - int(finite.sum())
        raise ValueError(
            f"{what} holds {bad} non-finite value{'s' if bad > 1 else ''} (NaN or Inf) among "
            f"{tensor.numel()}; expected finite numbers"
        )


def non_finite_tensors(state: dict[str, torch.Tensor]) -> list[str]:
    """Names of the floating-point tensors of a state dict that hold NaN or Inf."""
    return [
        name
        for name, value in state.items()
        if isinstance(value, torch.Tensor)
        and value.is_floating_point()
        and not torch.isfinite(value).all()
    ]


def check_finite_weights(model: nn.Module, where: str) -> None:
    bad = non_finite_tensors(model.state_dict())
    if bad:
        more = f" and {len(bad) - 1} more" if len(bad) > 1 else ""
        raise ValueError(
            f"{where}: weight {bad[0]}{more} holds NaN or Inf; expected finite numbers"
        )


@torch.no_grad()
def first_non_finite_layer(model: nn.Module, x: torch.Tensor) -> str | None:
    """Run `model` on `x` and return the name of the first layer (in execution order) whose
    output holds NaN or Inf, or None when every output is finite."""
    found: list[str] = []

    def hook(name):
        def record(module, inputs, output):
            outputs = output if isinstance(output, tuple) else (output,)
            if not found and any(
                isinstance(o, torch.Tensor)
                and o.is_floating_point()
                and not torch.isfinite(o).all()
                for o in outputs
            ):
                found.append(name)

        return record

    handles = [
        module.register_forward_hook(hook(name))
        for name, module in model.named_modules()
        if name and not list(module.children())
    ]
    try:
        model(x)
    except ValueError:
        pass  # a layer that refuses non-finite input has named the problem already
    finally:
        for handle in handles:
            handle.remove()
    return found[0] if found else None


def explain_non_finite(model: nn.Module, x: torch.Tensor, what: str, when: str) -> ValueError:
    """The error for non-finite logits or loss: which weight or layer produced them."""
    bad = non_finite_tensors(model.state_dict())
    if bad:
        cause = f"weight {bad[0]} holds NaN or Inf (a learning rate too high for this model?)"
    else:
        layer = first_non_finite_layer(model, x)
        cause = f"the first non-finite output comes from layer {layer}" if layer else "no layer"
    return ValueError(f"non-finite {what} {when}: {cause}")
