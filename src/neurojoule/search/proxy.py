"""A training-free score of an untrained network: how differently its spiking layers respond
to different inputs (the Hamming-distance kernel of SNASNet, Kim et al. 2022).

For a batch of N inputs, every spiking layer's spikes over all its neurons and time steps
form one binary code per input, c_i. Two inputs whose codes agree in many places are hard
to tell apart for the layers after it; the kernel K[i, j] = sum over layers of
(code length - Hamming distance(c_i, c_j)) counts the agreements, and the score is
log |det K|: larger when the codes of different inputs are far apart. Networks are ranked by
it at initialisation, before any training.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from neurojoule.neuron.lif_layer import SpikingNeuron


def _codes_by_sample(spikes: torch.Tensor, time_dim: int) -> torch.Tensor:
    """Spikes of one layer as [batch, code]: time moved last, the batch is then the first
    dimension (time-first [T, B, ...] and time-last [B, ..., T] layouts alike)."""
    return spikes.movedim(time_dim, -1).flatten(1)


@torch.no_grad()
def hamming_kernel(model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """K [N, N] of the spiking layers of `model` for a batch of N inputs. The model runs in
    training mode, as in the first step of training: an untrained batch norm normalises with
    the batch's statistics (its running statistics are updated, and the mode is put back)."""
    kernel = torch.zeros(len(inputs), len(inputs), dtype=torch.float64)
    layers = [m for m in model.modules() if isinstance(m, SpikingNeuron)]
    if not layers:
        raise ValueError(f"{type(model).__name__} has no spiking layers to score")

    def record(module, _inputs, spikes):
        codes = _codes_by_sample(spikes, getattr(module, "time_dim", 0)).double()
        if len(codes) != len(inputs):
            raise ValueError(
                f"a spiking layer's output {tuple(spikes.shape)} has no batch dimension of "
                f"{len(inputs)} after its time dimension; cannot score it"
            )
        kernel.add_(codes @ codes.T + (1 - codes) @ (1 - codes).T)

    hooks = [layer.register_forward_hook(record) for layer in layers]
    was_training = model.training
    try:
        model.train()(inputs)
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()
    return kernel


def hamming_score(model: nn.Module, inputs: torch.Tensor) -> float:
    """log |det K|: SNASNet's score of an untrained network on a batch (higher is better;
    -inf when two inputs give identical codes in every layer)."""
    return float(torch.linalg.slogdet(hamming_kernel(model, inputs)).logabsdet)


def proxy_correlation(entries: list[dict]) -> dict | None:
    """Kendall's tau between the proxy score at initialisation and the validation accuracy
    after training, over the evaluated candidates of a search by training that were scored
    and trained their whole budget (not cut); None with fewer than 3. A score of None
    (-inf: two inputs coded alike in every layer) ranks lowest."""
    from scipy.stats import kendalltau

    pairs = [
        (e["training"]["proxy_score"], e["val_accuracy"])
        for e in entries
        if "proxy_score" in (e.get("training") or {}) and not e["training"]["cut"]
    ]
    if len(pairs) < 3:
        return None
    scores, accuracies = zip(*pairs, strict=True)
    scores = [-math.inf if score is None else score for score in scores]
    tau, p_value = kendalltau(scores, accuracies)
    return {
        "name": "SNASNet Hamming score at initialisation",
        "kendall_tau": None if math.isnan(tau) else float(tau),
        "p_value": None if math.isnan(p_value) else float(p_value),
        "candidates": len(pairs),
    }
