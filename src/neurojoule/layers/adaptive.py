"""Adaptive input embeddings (Baevski & Auli 2019) and adaptive softmax (Grave et al. 2017).

The vocabulary, sorted by falling frequency, is cut into clusters at `cutoffs`: cluster i
holds ids [bounds[i], bounds[i + 1]) and has vectors of d_model // div_val**i dimensions, so
rare words cost fewer parameters. A cluster narrower than d_model has a projection
P_i [d_model, d_i]: the input maps an embedding e to P_i e, the softmax maps a hidden state h
to h P_i. The softmax head scores the first cluster's words and one logit per other cluster;
log p(w) = log p_head(cluster of w) + log p_cluster(w) for a word outside the first cluster.

Tied (AdaptiveSoftmax(..., tied_to=adaptive_input)): the softmax uses the very Parameters of
the input, the cluster vectors as output weights and the projections (transposed), as in
Transformer-XL on WikiText-103. Dropout: the input drops embedding entries before projecting;
the softmax drops entries of each cluster's (projected) hidden state.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import nn


def cluster_bounds(vocab_size: int, cutoffs: Sequence[int]) -> list[int]:
    """[0, *cutoffs, vocab_size], checked to rise strictly."""
    bounds = [0, *cutoffs, vocab_size]
    if not cutoffs or any(a >= b for a, b in pairwise(bounds)):
        raise ValueError(
            f"expected adaptive cutoffs rising strictly inside (0, {vocab_size}), got "
            f"{list(cutoffs)}"
        )
    return bounds


def cluster_dims(d_model: int, n_clusters: int, div_val: float) -> list[int]:
    """d_model // div_val**i for each cluster i, each at least 1."""
    dims = [int(d_model // div_val**i) for i in range(n_clusters)]
    if div_val < 1 or min(dims) < 1:
        raise ValueError(
            f"expected div_val >= 1 leaving every cluster at least 1 dimension, got div_val "
            f"{div_val} with d_model {d_model} and {n_clusters} clusters (dims {dims})"
        )
    return dims


class AdaptiveInput(nn.Module):
    """Token ids [...] -> vectors [..., d_model], scaled by sqrt(d_model) (entries of unit
    scale at initialisation, as nn.Embedding's). Id 0 of the first cluster pads (zero)."""

    def __init__(
        self,
        vocab_size: int,
        d_model: int,
        cutoffs: Sequence[int],
        div_val: float = 4.0,
        dropout: float = 0.0,
    ):
        super().__init__()
        self.bounds = cluster_bounds(vocab_size, cutoffs)
        self.dims = cluster_dims(d_model, len(self.bounds) - 1, div_val)
        self.d_model, self.scale = d_model, math.sqrt(d_model)
        self.embeddings = nn.ModuleList()
        self.projections = nn.ModuleDict()
        for i, ((start, stop), dim) in enumerate(
            zip(pairwise(self.bounds), self.dims, strict=True)
        ):
            embedding = nn.Embedding(stop - start, dim, padding_idx=0 if i == 0 else None)
            nn.init.normal_(embedding.weight, std=dim**-0.5)
            if i == 0:
                embedding.weight.data[0].zero_()
            self.embeddings.append(embedding)
            if dim != d_model:
                projection = nn.Linear(dim, d_model, bias=False)
                nn.init.normal_(projection.weight, std=d_model**-0.5)
                self.projections[str(i)] = projection
        self.dropout = nn.Dropout(dropout)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        flat = tokens.reshape(-1)
        dtype = self.embeddings[0].weight.dtype
        out = torch.zeros(flat.numel(), self.d_model, dtype=dtype, device=tokens.device)
        for i, index, local in _members(flat, self.bounds):
            vectors = self.dropout(self.embeddings[i](local))
            if str(i) in self.projections:
                vectors = self.projections[str(i)](vectors)
            out = out.index_copy(0, index, vectors.to(out.dtype))
        return (out * self.scale).view(*tokens.shape, self.d_model)


class AdaptiveSoftmax(nn.Module):
    """Hidden states [..., d_model] -> negative log-likelihood of targets [...] (forward), or
    log-probabilities over the whole vocabulary [..., vocab_size] (log_prob).

    forward() scores each tail cluster only at the positions whose target lies in it, so the
    full [..., vocab_size] never exists. `tied_to`: share an AdaptiveInput's Parameters.
    """

    def __init__(
        self,
        vocab_size: int,
        d_model: int,
        cutoffs: Sequence[int],
        div_val: float = 4.0,
        dropout: float = 0.0,
        tied_to: AdaptiveInput | None = None,
    ):
        super().__init__()
        self.bounds = cluster_bounds(vocab_size, cutoffs)
        self.dims = cluster_dims(d_model, len(self.bounds) - 1, div_val)
        self.d_model, self.vocab_size = d_model, vocab_size
        if tied_to is not None and (tied_to.bounds, tied_to.dims) != (self.bounds, self.dims):
            raise ValueError(
                f"a tied adaptive softmax needs the input's clusters: bounds {tied_to.bounds} "
                f"dims {tied_to.dims}, got bounds {self.bounds} dims {self.dims}"
            )
        # untied: borrow the Parameters (and initialisation) of a fresh, unregistered input
        source = tied_to or AdaptiveInput(vocab_size, d_model, cutoffs, div_val)
        self.weights = nn.ParameterList(embedding.weight for embedding in source.embeddings)
        self.projections = nn.ParameterDict(
            {key: projection.weight for key, projection in source.projections.items()}
        )
        self.biases = nn.ParameterList(
            nn.Parameter(torch.zeros(stop - start)) for start, stop in pairwise(self.bounds)
        )
        n_tails = len(self.bounds) - 2
        self.cluster_weight = nn.Parameter(torch.randn(n_tails, d_model) * d_model**-0.5)
        self.cluster_bias = nn.Parameter(torch.zeros(n_tails))
        self.dropout = nn.Dropout(dropout)
        self._last_macs = 0

    def forward(self, hidden: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
        """Negative log-likelihood of `targets`; without targets, log_prob(hidden)."""
        if targets is None:
            return self.log_prob(hidden)
        self._check(hidden, targets)
        flat_hidden, flat_targets = hidden.reshape(-1, self.d_model), targets.reshape(-1)
        head = torch.log_softmax(self._head_logits(flat_hidden), dim=-1)
        shortlist = self.bounds[1]
        nll = torch.zeros(flat_targets.numel(), dtype=head.dtype, device=head.device)
        macs = flat_targets.numel() * self._cluster_macs(0, with_head=True)
        for i, index, local in _members(flat_targets, self.bounds):
            if i == 0:
                picked = head[index].gather(1, local[:, None]).squeeze(1)
            else:
                tail = torch.log_softmax(self._cluster_logits(i, flat_hidden[index]), dim=-1)
                picked = head[index, shortlist + i - 1] + tail.gather(1, local[:, None]).squeeze(1)
                macs += index.numel() * self._cluster_macs(i)
            nll = nll.index_copy(0, index, -picked.to(nll.dtype))
        self._last_macs = macs
        return nll.view(targets.shape)

    def log_prob(self, hidden: torch.Tensor) -> torch.Tensor:
        """Log-probabilities over the whole vocabulary, [..., vocab_size]."""
        flat = hidden.reshape(-1, self.d_model)
        head = torch.log_softmax(self._head_logits(flat), dim=-1)
        shortlist = self.bounds[1]
        parts = [head[:, :shortlist]]
        for i in range(1, len(self.bounds) - 1):
            tail = torch.log_softmax(self._cluster_logits(i, flat), dim=-1)
            parts.append(head[:, shortlist + i - 1, None] + tail)
        self._last_macs = flat.shape[0] * sum(
            self._cluster_macs(i, with_head=i == 0) for i in range(len(self.dims))
        )
        return torch.cat(parts, dim=-1).view(*hidden.shape[:-1], self.vocab_size)

    def energy_dense_macs(self, inputs: torch.Tensor, output: torch.Tensor) -> int:
        """Multiply-adds of the last call (they depend on which clusters its targets hit)."""
        return self._last_macs

    def _head_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        words = self._cluster_logits(0, hidden)
        clusters = F.linear(hidden, self.cluster_weight, self.cluster_bias)
        return torch.cat([words, clusters], dim=-1)

    def _cluster_logits(self, i: int, hidden: torch.Tensor) -> torch.Tensor:
        if str(i) in self.projections:
            hidden = hidden @ self.projections[str(i)]
        return F.linear(self.dropout(hidden), self.weights[i], self.biases[i])

    def _cluster_macs(self, i: int, with_head: bool = False) -> int:
        size = self.bounds[i + 1] - self.bounds[i]
        projection = self.d_model * self.dims[i] if str(i) in self.projections else 0
        head = self.d_model * (len(self.bounds) - 2) if with_head else 0
        return projection + self.dims[i] * size + head

    def _check(self, hidden: torch.Tensor, targets: torch.Tensor) -> None:
        if hidden.shape[:-1] != targets.shape or hidden.shape[-1] != self.d_model:
            raise ValueError(
                f"expected hidden states [..., {self.d_model}] and targets [...] of the same "
                f"leading shape, got {tuple(hidden.shape)} and {tuple(targets.shape)}"
            )


def _members(ids: torch.Tensor, bounds: list[int]):
    """(cluster, positions, ids within the cluster) for every cluster that `ids` touch."""
    for i, (start, stop) in enumerate(pairwise(bounds)):
        index = ((ids >= start) & (ids < stop)).nonzero().squeeze(1)
        if index.numel():
            yield i, index, ids[index] - start
