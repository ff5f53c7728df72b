"""A LIF kernel's forward without gradients, and a population of networks run through it as
one (torch.func.vmap, search.es).

LIF neurons are independent of each other, so the members of a vmapped call are folded into
the neurons: one kernel call runs every member.
"""

from __future__ import annotations

import torch


def run_members_as_neurons(function, info, in_dims, x2d, u0, leak, vth, settings):
    """The vmap rule of a LIF inference Function (x2d [T, N] -> spikes [T, N], state [N]):
    `function.apply` on the members folded into the neurons, and the outputs unfolded."""
    size = info.batch_size

    def members_first(value: torch.Tensor, dim: int | None) -> torch.Tensor:
        return value.movedim(dim, 0) if dim is not None else value.expand(size, *value.shape)

    x = members_first(x2d, in_dims[0])  # [members, T, N]
    steps, n = x.shape[1:]
    folded = x.transpose(0, 1).reshape(steps, size * n)
    state, leaks, thresholds = (
        members_first(value, dim).reshape(-1)
        for value, dim in zip((u0, leak, vth), in_dims[1:4], strict=True)
    )
    s, u_last = function.apply(folded, state, leaks, thresholds, settings)
    return (s.reshape(steps, size, n), u_last.reshape(size, n)), (1, 0)


def inference_function(forward_2d, name: str) -> type[torch.autograd.Function]:
    """An autograd Function around `forward_2d(x2d, u0, leak, vth, settings)` -> (spikes,
    final state) for calls without gradients, with the vmap rule above."""

    class Inference(torch.autograd.Function):
        @staticmethod
        def forward(x2d, u0, leak, vth, settings):
            return forward_2d(x2d, u0, leak, vth, settings)

        @staticmethod
        def setup_context(ctx, inputs, output) -> None:
            pass

        @staticmethod
        def backward(ctx, *grads):
            raise RuntimeError(
                "the LIF inference kernel has no backward; call lif with grad enabled"
            )

        @staticmethod
        def vmap(info, in_dims, x2d, u0, leak, vth, settings):
            return run_members_as_neurons(Inference, info, in_dims, x2d, u0, leak, vth, settings)

    Inference.__name__ = Inference.__qualname__ = name
    return Inference
