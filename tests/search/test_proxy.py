"""The SNASNet training-free score: its kernel equals the Hamming agreements counted by hand,
identical codes give -inf, and it reads every spiking layer of the registry's models."""

import itertools
import math

import pytest
import torch

from neurojoule.models.registry import build_model
from neurojoule.neuron.lif_layer import LIF
from neurojoule.search.proxy import hamming_kernel, hamming_score

torch.set_num_threads(2)


class TwoLayers(torch.nn.Module):
    """Two LIF layers on a time-first input [T, B, C]; the second sees the first's spikes."""

    def __init__(self):
        super().__init__()
        self.first = LIF(time_dim=0, decay=0.5)
        self.second = LIF(time_dim=0, decay=0.9, v_threshold=0.5)

    def forward(self, x):
        return self.second(self.first(x.transpose(0, 1)))


def test_the_kernel_counts_agreements_of_every_layers_codes():
    torch.manual_seed(0)
    model = TwoLayers()
    x = torch.rand(5, 3, 4) * 2  # [B, T, C]
    with torch.no_grad():
        first = model.first(x.transpose(0, 1))
        second = model.second(first)
    codes = [[layer[:, b].flatten().tolist() for b in range(5)] for layer in (first, second)]
    expected = torch.zeros(5, 5, dtype=torch.float64)
    for layer in codes:
        for i, j in itertools.product(range(5), repeat=2):
            distance = sum(a != b for a, b in zip(layer[i], layer[j], strict=True))
            expected[i, j] += len(layer[i]) - distance
    assert torch.equal(hamming_kernel(model, x), expected)
    assert hamming_score(model, x) == pytest.approx(
        math.log(abs(float(torch.linalg.det(expected))))
    )


def test_inputs_with_identical_codes_score_minus_infinity():
    x = torch.rand(1, 3, 4).repeat(4, 1, 1)
    assert hamming_score(TwoLayers(), x) == -math.inf


@pytest.mark.parametrize(
    "name, options",
    [("dense-snn", {}), ("spiking-mlp", {"image_size": 8}), ("spikformer", {"image_size": 8})],
)
def test_the_registry_image_models_can_be_scored(name, options):
    torch.manual_seed(0)
    model = build_model(name, **options)
    score = hamming_score(model, torch.randn(8, 1, 8, 8))
    assert math.isfinite(score)


def test_a_model_without_spiking_layers_is_refused():
    with pytest.raises(ValueError, match="no spiking layers"):
        hamming_score(torch.nn.Linear(3, 2), torch.randn(4, 3))


def _trained(score, accuracy, cut=False):
    return {"val_accuracy": accuracy, "training": {"proxy_score": score, "cut": cut}}


def test_the_proxy_correlation_ranks_trained_candidates_only():
    from neurojoule.search.proxy import proxy_correlation

    agreeing = [_trained(s, a) for s, a in ((1.0, 0.1), (2.0, 0.3), (3.0, 0.5))]
    assert proxy_correlation(agreeing)["kendall_tau"] == 1.0
    # one discordant pair of three: tau = (2 - 1) / 3
    mixed = [_trained(s, a) for s, a in ((1.0, 0.3), (2.0, 0.1), (3.0, 0.5))]
    assert abs(proxy_correlation(mixed)["kendall_tau"] - 1 / 3) < 1e-12
    # -inf (None) ranks lowest; a cut candidate and one without a score are left out
    lowest = [_trained(None, 0.1), _trained(2.0, 0.3), _trained(3.0, 0.5)]
    others = [_trained(0.5, 0.9, cut=True), {"val_accuracy": 0.2, "training": {"cut": False}}]
    result = proxy_correlation(lowest + others)
    assert result["kendall_tau"] == 1.0 and result["candidates"] == 3
    assert proxy_correlation(agreeing[:2]) is None
