"""Spikformer's spiking self-attention and transformer block (Zhou et al., ICLR 2023).

Tokens are time-first and channel-major, [T, B, D, N]. Q, K and V are spikes, and there is no
softmax, so the product is associative: Q (K^T V) equals (Q K^T) V exactly (integer sums).
This module computes K^T V first: both matmuls then take spikes as their counted input (K^T,
then Q), and the cost is N d^2 instead of N^2 d per head.
"""

from __future__ import annotations

import torch
from torch import nn

from neurojoule.energy import SynapticMatmul
from neurojoule.layers.time_first import TimeFolded, token_linear_bn, vision_lif


class SpikingSelfAttention(nn.Module):
    """Q, K, V = LIF(BN(Linear(x))); LIF_attn(Q K^T V * scale) with threshold attn_threshold;
    then LIF(BN(Linear)). Spikes [T, B, D, N] out."""

    def __init__(
        self,
        dim: int,
        heads: int,
        scale: float = 0.125,
        v_threshold: float = 1.0,
        tau: float = 2.0,
        attn_threshold: float = 0.5,
    ):
        super().__init__()
        if dim % heads:
            raise ValueError(f"embedding dim {dim} is not divisible by {heads} heads")
        self.heads, self.scale = heads, scale
        lif = {"v_threshold": v_threshold, "tau": tau}
        self.q, self.k, self.v = (TimeFolded(token_linear_bn(dim, dim, bias=False)) for _ in "qkv")
        self.q_lif, self.k_lif, self.v_lif = (vision_lif(**lif) for _ in "qkv")
        self.kv_product = SynapticMatmul()
        self.q_product = SynapticMatmul()
        self.attn_lif = vision_lif(v_threshold=attn_threshold, tau=tau)
        self.proj = TimeFolded(token_linear_bn(dim, dim))
        self.proj_lif = vision_lif(**lif)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        steps, batch, dim, tokens = x.shape
        split = (steps, batch, self.heads, dim // self.heads, tokens)
        q = self.q_lif(self.q(x)).reshape(split)  # [T, B, h, d, N]
        k = self.k_lif(self.k(x)).reshape(split)
        v = self.v_lif(self.v(x)).reshape(split)
        kv = self.kv_product(k, v.transpose(-1, -2))  # K^T V: [T, B, h, d, d]
        attended = self.q_product(q.transpose(-1, -2), kv)  # Q (K^T V): [T, B, h, N, d]
        attended = attended.transpose(-1, -2).reshape(steps, batch, dim, tokens)
        return self.proj_lif(self.proj(self.attn_lif(attended * self.scale)))


class SpikingMLP(nn.Module):
    """LIF(BN(Linear D -> hidden)) -> LIF(BN(Linear hidden -> D)) on [T, B, D, N]."""

    def __init__(self, dim: int, hidden: int, v_threshold: float = 1.0, tau: float = 2.0):
        super().__init__()
        lif = {"v_threshold": v_threshold, "tau": tau}
        self.fc1, self.lif1 = TimeFolded(token_linear_bn(dim, hidden)), vision_lif(**lif)
        self.fc2, self.lif2 = TimeFolded(token_linear_bn(hidden, dim)), vision_lif(**lif)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lif2(self.fc2(self.lif1(self.fc1(x))))


class SpikformerBlock(nn.Module):
    """x <- x + SSA(x); x <- x + MLP(x). The sums of spikes are small integers, not spikes."""

    def __init__(
        self,
        dim: int,
        heads: int,
        mlp_ratio: float = 4.0,
        v_threshold: float = 1.0,
        tau: float = 2.0,
        attn_threshold: float = 0.5,
    ):
        super().__init__()
        self.attention = SpikingSelfAttention(
            dim, heads, v_threshold=v_threshold, tau=tau, attn_threshold=attn_threshold
        )
        self.mlp = SpikingMLP(dim, round(dim * mlp_ratio), v_threshold, tau)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(x)
        return x + self.mlp(x)
