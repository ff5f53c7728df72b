"""What the LIF tests of every backend share: the step-loop reference, inputs and the
gradients they compare (tests/neuron/test_lif.py, tests/neuron/test_triton_lif.py)."""

import torch

from neurojoule.neuron import LIFParameters, lif_step


def step_loop(x, u0, params):
    """The reference of the backends: lif_step applied along axis 0 in plain Python."""
    u, out = u0, []
    for x_t in x:
        s, u = lif_step(x_t, u, params)
        out.append(s)
    return torch.stack(out), u


def lif_inputs(dtype, form, steps=37, shape=(3, 5), seed=None):
    """(x [steps, *shape], u0, leak, vth), all requiring grad; drawn from torch's global
    generator, or from one seeded with `seed`."""
    generator = None if seed is None else torch.Generator().manual_seed(seed)

    def rand(*size):
        return torch.rand(*size, generator=generator, dtype=dtype)

    x = (torch.randn(steps, *shape, generator=generator, dtype=dtype) * 0.8 + 0.4).requires_grad_()
    u0 = (rand(*shape) * 0.5).requires_grad_()
    leak = rand(shape[-1]) * 0.6 + 0.1 if form == "multiplicative" else rand(shape[-1]) * 2 + 1.5
    vth = rand(shape[-1]) * 0.8 + 0.6
    return x, u0, leak.requires_grad_(), vth.requires_grad_()


def lif_params(form, leak, vth, **settings) -> LIFParameters:
    leaks = {"decay": leak} if form == "multiplicative" else {"tau": leak}
    return LIFParameters(**leaks, v_threshold=vth, **settings)


def grads_of(spikes, state, leaves):
    """Gradients of a fixed weighting of the spikes plus the final state, zeros where unused."""
    weight = torch.linspace(-1, 1, spikes.numel(), dtype=spikes.dtype, device=spikes.device)
    loss = (spikes * weight.reshape(spikes.shape)).sum() + (state * 0.3).sum()
    grads = torch.autograd.grad(loss, leaves, allow_unused=True)
    return [torch.zeros_like(v) if g is None else g for g, v in zip(grads, leaves, strict=True)]


def assert_same_grads(run, reference, leaves, rtol, atol):
    """The gradients of grads_of agree for two (spikes, final state) pairs, leaf by leaf."""
    got, want = grads_of(*run, leaves), grads_of(*reference, leaves)
    for index, (a, b) in enumerate(zip(got, want, strict=True)):
        torch.testing.assert_close(a, b, rtol=rtol, atol=atol, msg=f"gradient of leaf {index}")
