"""The SpikingSSM block, its non-spiking S4D baseline and the residual backbone around them.

    SpikingS4DBlock:  S4D -> SSMNeuron (threshold scaling + LIF) -> dropout -> 1x1 conv H->2H -> GLU
    S4DBlock:         S4D -> GELU -> dropout -> 1x1 conv H->2H -> GLU
    SSMBackbone:      n residual layers around either block, prenorm or postnorm

All of them map [B, H, L] to [B, H, L]; causal ones also run as a recurrence, one position
[B, H, 1] at a time with an explicit state (`initial_state`, `step`), for streaming. In the
spiking block the spikes reach only the 1x1 conv, so at inference its input is binary
(accumulate-only synapses) while the residual stream stays real-valued. In training mode
nn.Dropout rescales kept spikes by 1 / (1 - p), so the conv sees {0, 1 / (1 - p)} then; at
inference dropout is the identity.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from neurojoule.layers.checks import check_sequence_batch
from neurojoule.layers.ssm import S4D, S4DKernelConfig
from neurojoule.neuron import SSMNeuron, SSMNeuronConfig

NORMS = ("batch", "layer")


class _GatedS4DBlock(nn.Module):
    """S4D -> activation -> dropout -> Conv1d(H, 2H, 1) -> GLU over channels."""

    def __init__(self, d_model: int, kernel: S4DKernelConfig | None, dropout: float):
        super().__init__()
        self.ssm = S4D(d_model, kernel)
        self.dropout = nn.Dropout(dropout)
        self.conv = nn.Conv1d(d_model, 2 * d_model, kernel_size=1)

    def activate(self, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.glu(self.conv(self.dropout(self.activate(self.ssm(x)))), dim=1)

    activation_states = 0  # tensors the activation carries from one step to the next

    def initial_state(self, batch: int) -> tuple[torch.Tensor, ...]:
        """What one step carries for `batch` sequences at their start: the S4D state, then
        the activation's (the neurons' potentials; nothing for GELU)."""
        return (self.ssm.initial_state(batch), *self.activation_state(batch))

    def activation_state(self, batch: int) -> tuple[torch.Tensor, ...]:
        return ()

    def activate_step(
        self, y: torch.Tensor, state: tuple[torch.Tensor, ...]
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        return self.activate(y), state

    def step(
        self, x: torch.Tensor, state: tuple[torch.Tensor, ...]
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """One step [B, H, 1] -> (output [B, H, 1], state): forward() one position at a time.
        The submodules are called as modules, so energy hooks count every step."""
        size = 1 + self.activation_states
        if not isinstance(state, tuple | list) or len(state) != size:
            raise ValueError(
                f"{type(self).__name__} step expects a state of {size} tensors (from "
                f"initial_state), got {type(state).__name__}"
                + (f" of {len(state)}" if isinstance(state, tuple | list) else "")
            )
        y, ssm_state = self.ssm(x, state=state[0])
        a, activation_state = self.activate_step(y, tuple(state[1:]))
        return F.glu(self.conv(self.dropout(a)), dim=1), (ssm_state, *activation_state)


class SpikingS4DBlock(_GatedS4DBlock):
    """The spiking S4D block of SpikingSSM: the S4D output drives one LIF neuron per channel."""

    def __init__(
        self,
        d_model: int,
        kernel: S4DKernelConfig | None = None,
        neuron: SSMNeuronConfig | None = None,
        *,
        dropout: float = 0.0,
    ):
        super().__init__(d_model, kernel, dropout)
        self.neuron = SSMNeuron(d_model, neuron)

    def activate(self, y: torch.Tensor) -> torch.Tensor:
        return self.neuron(y)

    activation_states = 1

    def activation_state(self, batch: int) -> tuple[torch.Tensor, ...]:
        """The neurons' potentials [batch, H] at rest (v_reset = 0)."""
        like = self.ssm.D
        return (torch.zeros(batch, self.ssm.d_model, dtype=like.dtype, device=like.device),)

    def activate_step(
        self, y: torch.Tensor, state: tuple[torch.Tensor, ...]
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        spikes, potentials = self.neuron(y, state=state[0])
        return spikes, (potentials,)


class S4DBlock(_GatedS4DBlock):
    """The non-spiking baseline with the same backbone: GELU where the spiking block fires."""

    def __init__(
        self, d_model: int, kernel: S4DKernelConfig | None = None, *, dropout: float = 0.0
    ):
        super().__init__(d_model, kernel, dropout)
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

    def step(self, x: torch.Tensor, state: tuple) -> tuple[torch.Tensor, tuple]:
        """forward() on one step [B, H, 1], the block carrying `state` (see SSMBackbone.step)."""
        if self.prenorm:
            out, state = self.block.step(self.norm(x), state)
            return x + self.dropout(out), state
        out, state = self.block.step(x, state)
        return self.norm(x + self.dropout(out)), state

    def extra_repr(self) -> str:
        return f"prenorm={self.prenorm}"


class SSMBackbone(nn.Module):
    """`n_layers` residual layers on [B, H, L], H = d_model.

    Blocks are SpikingS4DBlock(d_model, kernel, neuron), or S4DBlock(d_model, kernel) when
    `neuron` is None, with the backbone's dropout; or `block_factory(layer_index)` for any
    other block. With prenorm the residual stream is normalised once more after the last
    layer (as in the S4 sequence model), so the decoder always reads a normalised stream.
    """

    def __init__(
        self,
        d_model: int,
        n_layers: int,
        *,
        kernel: S4DKernelConfig | None = None,
        neuron: SSMNeuronConfig | None = None,
        block_factory: Callable[[int], nn.Module] | None = None,
        prenorm: bool = True,
        norm: str = "batch",
        dropout: float = 0.0,
    ):
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"SSMBackbone needs n_layers >= 1, got {n_layers}")
        if block_factory is not None and (kernel is not None or neuron is not None):
            raise ValueError(
                "give SSMBackbone either block_factory or the kernel / neuron configs, not both"
            )
        if block_factory is None:
            block_factory = _standard_blocks(d_model, kernel, neuron, dropout)
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
        check_sequence_batch(x, self.d_model, "SSMBackbone")
        for layer in self.layers:
            x = layer(x)
        return self.final_norm(x)

    def initial_state(self, batch: int) -> tuple[tuple[torch.Tensor, ...], ...]:
        """The state of `batch` streams before their first step: one tuple of tensors a layer
        (its S4D state, then its neurons' potentials), of sizes that never grow."""
        self._check_streamable()
        return tuple(layer.block.initial_state(batch) for layer in self.layers)

    def step(
        self, x: torch.Tensor, state: tuple[tuple[torch.Tensor, ...], ...]
    ) -> tuple[torch.Tensor, tuple[tuple[torch.Tensor, ...], ...]]:
        """forward() as a recurrence: the next position x [B, H, 1] of every stream and the
        state after the previous ones -> (output [B, H, 1], new state). Stepping a sequence
        from `initial_state` gives forward()'s outputs on it, position by position. The state
        passed in is never modified."""
        self._check_streamable()
        check_sequence_batch(x, self.d_model, "SSMBackbone")
        if x.shape[-1] != 1:
            raise ValueError(
                f"SSMBackbone step expects one step [B, {self.d_model}, 1], got {tuple(x.shape)}"
            )
        if not isinstance(state, tuple | list) or len(state) != len(self.layers):
            got = type(state).__name__
            if isinstance(state, tuple | list):
                got += f" of length {len(state)}"
            raise ValueError(
                f"SSMBackbone step expects the state of its {len(self.layers)} layers (from "
                f"initial_state), got {got}"
            )
        new_state = []
        for layer, layer_state in zip(self.layers, state, strict=True):
            x, layer_state = layer.step(x, layer_state)
            new_state.append(layer_state)
        return self.final_norm(x), tuple(new_state)

    def _check_streamable(self) -> None:
        """Refuse what cannot run one position at a time: blocks without a step, or batch
        norms in training mode (their batch statistics mix all positions)."""
        for index, layer in enumerate(self.layers):
            if not callable(getattr(layer.block, "step", None)):
                raise ValueError(
                    f"SSMBackbone layer {index}: a {type(layer.block).__name__} cannot run one "
                    "step at a time; expected a SpikingS4DBlock or S4DBlock"
                )
        for norm in [layer.norm for layer in self.layers] + [self.final_norm]:
            if isinstance(norm, nn.modules.batchnorm._BatchNorm) and norm.training:
                raise ValueError(
                    "SSMBackbone steps one position at a time only with layer norms or batch "
                    "norms in eval mode: a batch norm in training mode mixes all positions"
                )


def _standard_blocks(
    d_model: int, kernel: S4DKernelConfig | None, neuron: SSMNeuronConfig | None, dropout: float
) -> Callable[[int], nn.Module]:
    if neuron is None:
        return lambda index: S4DBlock(d_model, kernel, dropout=dropout)
    return lambda index: SpikingS4DBlock(d_model, kernel, neuron, dropout=dropout)
