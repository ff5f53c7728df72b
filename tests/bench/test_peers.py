"""Our LIF against the peers' own implementations, which are independent references."""

import pytest
import torch

from neurojoule.bench.neuron import (
    SJ_DYNAMICS,
    SJ_TAU,
    SNNTORCH_DYNAMICS,
    SNNTORCH_TAU,
    ours,
    snntorch_leaky,
    spikingjelly_lif,
)


def _spikes_and_input_grad(fn, x, weight):
    x = x.detach().requires_grad_()
    spikes = fn(x)
    (spikes * weight).sum().backward()
    return spikes.detach(), x.grad


@pytest.mark.parametrize(
    ("peer", "dynamics", "tau"),
    [(spikingjelly_lif, SJ_DYNAMICS, SJ_TAU), (snntorch_leaky, SNNTORCH_DYNAMICS, SNNTORCH_TAU)],
    ids=["spikingjelly", "snntorch"],
)
def test_same_spikes_and_gradients_as_peer(peer, dynamics, tau):
    runner = peer()
    if runner is None:
        pytest.skip("peer not installed (make bench-peers)")
    x = torch.randn(300, 4, 32) * 1.5 + 0.3
    weight = torch.randn_like(x)
    our_spikes, our_grad = _spikes_and_input_grad(ours(dynamics, tau), x, weight)
    peer_spikes, peer_grad = _spikes_and_input_grad(runner, x, weight)
    assert 0.05 < our_spikes.mean() < 0.6
    assert torch.equal(our_spikes, peer_spikes)
    torch.testing.assert_close(our_grad, peer_grad, rtol=1e-5, atol=1e-5)
