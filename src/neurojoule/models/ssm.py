"""SpikingSSM and S4D networks for long sequences: a classifier and a causal language model.

    encoder (Embedding for token ids, Linear for real values) -> SSMBackbone on [B, H, L]
    -> decoder (masked mean over positions -> Linear; or per position -> Linear for the LM)

The same config builds the spiking model (spiking=True) and its S4D baseline (spiking=False).
The flat SSMConfig (as YAML sees it) is built once into the kernel config and the neuron config
that the layers take whole. Registered: spiking-ssm, s4d, spiking-ssm-lm, s4d-lm. The language
model also runs as a recurrence, one token at a time (CausalLM.init_stream / step).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import torch
from torch import nn

from neurojoule.data.tokens import BYTE_VOCAB_SIZE, PAD_ID
from neurojoule.layers.adaptive import AdaptiveInput, AdaptiveSoftmax
from neurojoule.layers.checks import check_finite
from neurojoule.layers.spiking_ssm import SSMBackbone
from neurojoule.models.registry import merge_config, register_model
from neurojoule.models.ssm_config import SSMConfig


def _backbone(config: SSMConfig) -> SSMBackbone:
    return SSMBackbone(
        config.d_model,
        config.n_layers,
        kernel=config.kernel_config(),
        neuron=config.neuron_config(),
        prenorm=config.prenorm,
        norm=config.norm,
        dropout=config.dropout,
    )


def _check_config(config) -> None:
    if not isinstance(config, SSMConfig):
        raise ValueError(f"expected an SSMConfig, got {type(config).__name__}")


def _check_tokens(tokens: torch.Tensor, vocab_size: int, shape: str, ndim: int) -> None:
    if tokens.dtype not in (torch.int64, torch.int32) or tokens.dim() != ndim:
        raise ValueError(
            f"expected token ids as an integer tensor {shape}, "
            f"got {tokens.dtype} of shape {tuple(tokens.shape)}"
        )
    _check_not_empty(tokens, shape)
    if tokens.numel() and (tokens.min() < 0 or tokens.max() >= vocab_size):
        raise ValueError(
            f"expected token ids in [0, {vocab_size}), "
            f"got ids from {tokens.min().item()} to {tokens.max().item()}"
        )


def _check_not_empty(x: torch.Tensor, shape: str) -> None:
    """At least one sequence of at least one step (the other sizes are checked positive)."""
    if x.numel() == 0:
        raise ValueError(
            f"expected a non-empty input {shape}: at least one sequence of at least one step, "
            f"got shape {tuple(x.shape)}"
        )


def masked_mean(h: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean of [B, H, L] over positions where mask [B, L] is True (all when None) -> [B, H]."""
    if mask is None:
        return h.mean(-1)
    weights = mask.to(h.dtype).unsqueeze(1)
    return (h * weights).sum(-1) / weights.sum(-1).clamp(min=1)


class SequenceClassifier(nn.Module):
    """Logits [B, num_classes] for token ids [B, L] (or pairs [B, 2, L]) or real input [B, L, C].

    Token input is mean-pooled over its non-padding positions only, real input over all
    positions. The backbone itself still runs over the padding: with a bidirectional kernel,
    trailing pads reach earlier positions through the anti-causal kernel. Pairs (AAN) go
    through the shared backbone; [h1, h2, h1*h2, h1-h2] feeds a 2-layer MLP, as in LRA.
    """

    def __init__(self, config: SSMConfig):
        super().__init__()
        _check_config(config)
        if config.vocab_size is None and config.in_channels is None:
            raise ValueError(
                "SequenceClassifier needs SSMConfig.vocab_size (token input) or "
                "SSMConfig.in_channels (real-valued input), got neither"
            )
        lm_only = _language_model_options(config)
        if lm_only:
            raise ValueError(
                f"SequenceClassifier takes no language-model options, got {lm_only} "
                "(they belong to CausalLM)"
            )
        self.config = config
        d_model = config.d_model
        if config.vocab_size is not None:
            self.encoder = nn.Embedding(config.vocab_size, d_model, padding_idx=PAD_ID)
        else:
            self.encoder = nn.Linear(config.in_channels, d_model)
        self.backbone = _backbone(config)
        if config.paired:
            self.decoder = nn.Sequential(
                nn.Linear(4 * d_model, d_model), nn.GELU(), nn.Linear(d_model, config.num_classes)
            )
        else:
            self.decoder = nn.Linear(d_model, config.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.features(x))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """What the decoder reads: pooled [B, H], or [B, 4H] for pairs."""
        self._check_input(x)
        if not self.config.paired:
            return self.pool(x)
        h1, h2 = self.pool(torch.cat([x[:, 0], x[:, 1]])).chunk(2)
        return torch.cat([h1, h2, h1 * h2, h1 - h2], dim=-1)

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        """Encode, run the backbone, and mean-pool one sequence per row -> [B, H]."""
        h = self.backbone(self.encoder(x).transpose(1, 2))
        return masked_mean(h, None if self.config.vocab_size is None else x != PAD_ID)

    def _check_input(self, x: torch.Tensor) -> None:
        config = self.config
        if config.paired:
            _check_tokens(x, config.vocab_size, "[B, 2, L] (document pairs)", 3)
            if x.shape[1] != 2:
                raise ValueError(f"expected document pairs [B, 2, L], got {tuple(x.shape)}")
        elif config.vocab_size is not None:
            _check_tokens(x, config.vocab_size, "[B, L]", 2)
        else:
            if not x.is_floating_point() or x.dim() != 3 or x.shape[-1] != config.in_channels:
                raise ValueError(
                    f"expected a float tensor [B, L, {config.in_channels}] (in_channels), "
                    f"got {x.dtype} of shape {tuple(x.shape)}"
                )
            _check_not_empty(x, f"[B, L, {config.in_channels}]")
            check_finite(x, "SequenceClassifier input")


class CausalLM(nn.Module):
    """Next-token logits [B, L, vocab_size] for token ids [B, L]; position t sees only <= t.

    Needs a causal config: unidirectional kernel and layer norm. The SDN mode is causal too.
    With `adaptive_cutoffs` the encoder is an AdaptiveInput and the decoder an
    AdaptiveSoftmax: forward() then returns log-probabilities (valid logits, but the whole
    [B, L, vocab_size]); train with nll() / loss(), which never build them.
    """

    def __init__(self, config: SSMConfig):
        super().__init__()
        _check_config(config)
        if config.bidirectional:
            raise ValueError(
                "CausalLM needs a unidirectional S4D kernel: SSMConfig.bidirectional must be "
                "False, got True"
            )
        if not config.causal:
            raise ValueError("CausalLM needs SSMConfig.causal=True, got False")
        if config.vocab_size is None or config.paired:
            raise ValueError(
                "CausalLM needs token input: SSMConfig.vocab_size set and paired=False, "
                f"got vocab_size={config.vocab_size}, paired={config.paired}"
            )
        self.config = config
        self.adaptive = config.adaptive_cutoffs is not None
        # built in this order (encoder, backbone, decoder) so a seed gives the same weights
        sizes = (config.vocab_size, config.d_model, config.adaptive_cutoffs, config.div_val)
        if self.adaptive:
            self.encoder = AdaptiveInput(*sizes, dropout=config.emb_dropout)
        else:
            self.encoder = nn.Embedding(config.vocab_size, config.d_model, padding_idx=PAD_ID)
            self.emb_dropout = nn.Dropout(config.emb_dropout)
        self.backbone = _backbone(config)
        if self.adaptive:
            tied = self.encoder if config.tie_weights else None
            self.decoder = AdaptiveSoftmax(*sizes, dropout=config.softmax_dropout, tied_to=tied)
        else:
            self.decoder = nn.Linear(config.d_model, config.vocab_size)
            if config.tie_weights:
                self.decoder.weight = self.encoder.weight
            self.softmax_dropout = nn.Dropout(config.softmax_dropout)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        h = self.features(tokens)
        if self.adaptive:
            return self.decoder.log_prob(h)
        return self.decoder(self.softmax_dropout(h))

    def init_stream(self, batch: int = 1) -> StreamState:
        """The state of `batch` token streams before their first token (see `step`)."""
        return self.backbone.initial_state(batch)

    def step(self, tokens: torch.Tensor, state: StreamState) -> tuple[torch.Tensor, StreamState]:
        """The model as a recurrence: the next token of each stream, ids [B], and the state
        after the earlier ones -> (what forward() gives at this position, [B, vocab_size]:
        logits, or log-probabilities with an adaptive softmax; the new state).

        Stepping a sequence from `init_stream(B)` gives forward()'s outputs on it position by
        position, with the exact LIF (an SDN mode is not used: it needs the whole sequence).
        The state -- per layer the complex S4D state [B, H, d_state / 2] and the neurons'
        potentials [B, H] -- never grows, so every step costs the same. The state passed in
        is left as it was, so a stream can be branched. Every op runs through a module call,
        so an EnergyCounter counts the streamed ops.
        """
        if not isinstance(tokens, torch.Tensor):
            raise ValueError(f"expected token ids [B] as a tensor, got {type(tokens).__name__}")
        _check_tokens(tokens, self.config.vocab_size, "[B] (one id per stream)", 1)
        x = self.encoder(tokens.unsqueeze(1))
        if not self.adaptive:
            x = self.emb_dropout(x)
        h, state = self.backbone.step(x.transpose(1, 2), state)
        h = h.transpose(1, 2)  # [B, 1, d_model]
        out = self.decoder(h) if self.adaptive else self.decoder(self.softmax_dropout(h))
        return out.squeeze(1), state

    def features(self, tokens: torch.Tensor) -> torch.Tensor:
        """The hidden state the decoder reads, [B, L, d_model]."""
        _check_tokens(tokens, self.config.vocab_size, "[B, L]", 2)
        x = self.encoder(tokens)
        if not self.adaptive:
            x = self.emb_dropout(x)
        return self.backbone(x.transpose(1, 2)).transpose(1, 2)

    def nll(self, tokens: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Negative log-likelihood of each target [B, L]; 0 where the target pads (id 0)."""
        _check_tokens(targets, self.config.vocab_size, "[B, L] (targets)", 2)
        if targets.shape != tokens.shape:
            raise ValueError(
                f"expected targets shaped like the tokens {tuple(tokens.shape)}, "
                f"got {tuple(targets.shape)}"
            )
        h = self.features(tokens)
        if self.adaptive:
            nll = self.decoder(h, targets)
        else:
            logits = self.decoder(self.softmax_dropout(h))
            nll = nn.functional.cross_entropy(logits.transpose(1, 2), targets, reduction="none")
        return nll.masked_fill(targets == PAD_ID, 0.0)

    def loss(self, tokens: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean negative log-likelihood over the non-padding targets."""
        counted = (targets != PAD_ID).sum().clamp(min=1)
        return self.nll(tokens, targets).sum() / counted


# what CausalLM.step carries: per layer (S4D state [B, H, d_state / 2] complex, potentials [B, H])
StreamState = tuple[tuple[torch.Tensor, ...], ...]


def _language_model_options(config: SSMConfig) -> dict:
    """The CausalLM-only fields that differ from their defaults."""
    defaults = SSMConfig()
    names = ("adaptive_cutoffs", "tie_weights", "emb_dropout", "softmax_dropout")
    return {n: getattr(config, n) for n in names if getattr(config, n) != getattr(defaults, n)}


def _classifier(spiking: bool, config, overrides: dict) -> SequenceClassifier:
    merged = merge_config(SSMConfig, config, overrides, fixed={"spiking": spiking})
    if merged.vocab_size is None and merged.in_channels is None:
        merged = dataclasses.replace(merged, in_channels=1)  # one real value a step (pixels)
    return SequenceClassifier(merged)


def _language_model(spiking: bool, config, overrides: dict) -> CausalLM:
    fixed = {"spiking": spiking, "causal": True, "bidirectional": False}
    preset = {"norm": "layer", "vocab_size": BYTE_VOCAB_SIZE}
    return CausalLM(merge_config(SSMConfig, config, overrides, preset=preset, fixed=fixed))


@register_model("spiking-ssm", input_shape=("batch", "length", 1))
def spiking_ssm(config: SSMConfig | Mapping | None = None, **overrides) -> SequenceClassifier:
    """SpikingSSM sequence classifier: S4D -> LIF with learnable threshold -> 1x1 conv + GLU"""
    return _classifier(True, config, overrides)


@register_model("s4d", input_shape=("batch", "length", 1))
def s4d(config: SSMConfig | Mapping | None = None, **overrides) -> SequenceClassifier:
    """S4D sequence classifier: the non-spiking baseline (GELU instead of LIF)"""
    return _classifier(False, config, overrides)


@register_model("spiking-ssm-lm", input_shape=("batch", "length"))
def spiking_ssm_lm(config: SSMConfig | Mapping | None = None, **overrides) -> CausalLM:
    """SpikingSSM causal language model: unidirectional kernel, layer norm, per-position logits"""
    return _language_model(True, config, overrides)


@register_model("s4d-lm", input_shape=("batch", "length"))
def s4d_lm(config: SSMConfig | Mapping | None = None, **overrides) -> CausalLM:
    """S4D causal language model: the non-spiking baseline of spiking-ssm-lm"""
    return _language_model(False, config, overrides)
