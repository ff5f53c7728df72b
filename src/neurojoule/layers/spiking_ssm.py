"""The SpikingSSM block, its non-spiking S4D baseline and the residual backbone around them.

    SpikingS4DBlock:  S4D -> SSMNeuron (threshold scaling + LIF) -> dropout -> 1x1 conv H->2H -> GLU
    S4DBlock:         S4D -> GELU -> dropout -> 1x1 conv H->2H -> GLU
    SSMBackbone:      n residual layers around either block, prenorm or postnorm

All of them map [B, H, L] to [B, H, L]. In the spiking block the spikes reach only the 1x1
conv, so at inference its input is binary (accumulate-only synapses) while the residual stream
stays real-valued. In training mode nn.Dropout rescales kept spikes by 1 / (1 - p), so the conv
sees {0, 1 / (1 - p)} then; at inference dropout is the identity.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from neurojoule.layers.ssm import S4D
from neurojoule.neuron import SSM_NEURON_MODES, SSMNeuron

NORMS = ("batch", "layer")


class _GatedS4DBlock(nn.Module):
    """S4D -> activation -> dropout -> Conv1d(H, 2H, 1) -> GLU over channels."""

    def __init__(self, d_model: int, d_state: int, dropout: float, **s4d_kwargs):
        super().__init__()
        self.ssm = S4D(d_model, d_state, **s4d_kwargs)
        self.dropout = nn.Dropout(dropout)
        self.conv = nn.Conv1d(d_model, 2 * d_model, kernel_size=1)

    def activate(self, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.glu(self.conv(self.dropout(self.activate(self.ssm(x)))), dim=1)


class SpikingS4DBlock(_GatedS4DBlock):
    """The spiking S4D block of SpikingSSM: the S4D output drives one LIF neuron per channel."""

    def __init__(
        self,
        d_model: int,
        d_state: int = 64,
        *,
        bidirectional: bool = False,
        trainable_B: bool = False,
        dropout: float = 0.0,
        tau: float = 0.125,
        threshold: str = "channel",
        lif_mode: str = "bptt",
        surrogate: str = "triangle",
        dt_min: float = 1e-3,
        dt_max: float = 1e-1,
        init: str = "lin",
    ):
        super().__init__(
            d_model,
            d_state,
            dropout,
            dt_min=dt_min,
            dt_max=dt_max,
            init=init,
            bidirectional=bidirectional,
            trainable_B=trainable_B,
        )
        self.neuron = SSMNeuron(
            d_model, tau=tau, threshold=threshold, mode=lif_mode, surrogate=surrogate
        )

    def activate(self, y: torch.Tensor) -> torch.Tensor:
        return self.neuron(y)


class S4DBlock(_GatedS4DBlock):
    """The non-spiking baseline with the same backbone: GELU where the spiking block fires."""

    def __init__(
        self,
        d_model: int,
        d_state: int = 64,
        *,
        bidirectional: bool = False,
        trainable_B: bool = False,
        dropout: float = 0.0,
        dt_min: float = 1e-3,
        dt_max: float = 1e-1,
        init: str = "lin",
    ):
        super().__init__(
            d_model,
            d_state,
            dropout,
            dt_min=dt_min,
            dt_max=dt_max,
            init=init,
            bidirectional=bidirectional,
            trainable_B=trainable_B,
        )
        self.gelu = nn.GELU()

    def activate(self, y: torch.Tensor) -> torch.Tensor:
        return self.gelu(y)


class ChannelLayerNorm(nn.LayerNorm):
    """LayerNorm over the channels of [B, H, L], separately at every position (so causal)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.transpose(1, 2)).transpose(1, 2)


def channel_norm(kind: str, channels: int) -> nn.Module:
    """ "batch": BatchNorm1d over the channels of [B, H, L]; "layer": ChannelLayerNorm."""
    if kind == "batch":
        return nn.BatchNorm1d(channels)
    if kind == "layer":
        return ChannelLayerNorm(channels)
    raise ValueError(f"norm must be one of {NORMS}, got {kind!r}")


class ResidualLayer(nn.Module):
    """One backbone layer around `block`.

    prenorm:  x + dropout(block(norm(x)))
    postnorm: norm(x + dropout(block(x)))
    """

    def __init__(self, block: nn.Module, norm: nn.Module, *, prenorm: bool, dropout: float):
        super().__init__()
        self.block, self.norm, self.prenorm = block, norm, prenorm
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.prenorm:
            return x + self.dropout(self.block(self.norm(x)))
        return self.norm(x + self.dropout(self.block(x)))

    def extra_repr(self) -> str:
        return f"prenorm={self.prenorm}"


class SSMBackbone(nn.Module):
    """`n_layers` residual layers on [B, H, L], H = d_model.

    Blocks are SpikingS4DBlock (spiking=True) or S4DBlock, built with `block_kwargs` (their
    dropout defaults to the backbone's), or `block_factory(layer_index)` for any other block.
    With prenorm the residual stream is normalised once more after the last layer (as in the
    S4 sequence model), so the decoder always reads a normalised stream.
    """

    def __init__(
        self,
        d_model: int,
        n_layers: int,
        *,
        spiking: bool = True,
        block_kwargs: Mapping | None = None,
        block_factory: Callable[[int], nn.Module] | None = None,
        prenorm: bool = True,
        norm: str = "batch",
        dropout: float = 0.0,
    ):
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"SSMBackbone needs n_layers >= 1, got {n_layers}")
        if block_factory is not None and block_kwargs:
            raise ValueError("give SSMBackbone either block_factory or block_kwargs, not both")
        if block_factory is None:
            block_factory = _standard_blocks(
                d_model, spiking, {"dropout": dropout, **(block_kwargs or {})}
            )
        self.d_model, self.prenorm = d_model, prenorm
        self.layers = nn.ModuleList(
            ResidualLayer(
                block_factory(index),
                channel_norm(norm, d_model),
                prenorm=prenorm,
                dropout=dropout,
            )
            for index in range(n_layers)
        )
        self.final_norm = channel_norm(norm, d_model) if prenorm else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3 or x.shape[1] != self.d_model or not x.is_floating_point():
            raise ValueError(
                f"SSMBackbone expects a float tensor [B, H, L] with H = d_model = "
                f"{self.d_model}, got {x.dtype} of shape {tuple(x.shape)}"
            )
        for layer in self.layers:
            x = layer(x)
        return self.final_norm(x)


def _standard_blocks(d_model: int, spiking: bool, kwargs: dict) -> Callable[[int], nn.Module]:
    block_class = SpikingS4DBlock if spiking else S4DBlock
    return lambda index: block_class(d_model, **kwargs)


def ssm_neurons(module: nn.Module) -> dict[str, SSMNeuron]:
    """Every SSMNeuron inside `module`, by qualified name."""
    return {name: m for name, m in module.named_modules() if isinstance(m, SSMNeuron)}


def set_lif_mode(module: nn.Module, mode: str | Mapping[str, str]) -> dict[str, str]:
    """Set the mode of every SSMNeuron in `module` (one mode, or a mode per qualified name as
    returned here) and return the previous modes, so `set_lif_mode(m, previous)` undoes it.

    Parameters never change. If a mode cannot be set (no SDN shipped for a neuron's tau), every
    neuron is put back to its previous mode before the ValueError propagates.
    """
    neurons = ssm_neurons(module)
    targets = _target_modes(neurons, mode)
    previous = {name: neuron.mode for name, neuron in neurons.items()}
    try:
        for name, target in targets.items():
            neurons[name].mode = target
    except ValueError:
        for name, old in previous.items():
            neurons[name].mode = old
        raise
    return previous


@contextmanager
def lif_mode(module: nn.Module, mode: str | Mapping[str, str]) -> Iterator[dict[str, str]]:
    """Run a block of code with the SSMNeurons of `module` in `mode`, then restore theirs."""
    previous = set_lif_mode(module, mode)
    try:
        yield previous
    finally:
        set_lif_mode(module, previous)


def _target_modes(neurons: dict[str, SSMNeuron], mode: str | Mapping[str, str]) -> dict[str, str]:
    if isinstance(mode, str):
        _check_mode(mode)
        return dict.fromkeys(neurons, mode)
    unknown = sorted(set(mode) - set(neurons))
    if unknown:
        raise ValueError(f"expected names of SSMNeurons in the module, got unknown {unknown}")
    for target in mode.values():
        _check_mode(target)
    return dict(mode)


def _check_mode(mode: str) -> None:
    if mode not in SSM_NEURON_MODES:
        raise ValueError(f"LIF mode must be one of {SSM_NEURON_MODES}, got {mode!r}")
