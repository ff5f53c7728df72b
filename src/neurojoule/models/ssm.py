"""SpikingSSM and S4D networks for long sequences: a classifier and a causal language model.

    encoder (Embedding for token ids, Linear for real values) -> SSMBackbone on [B, H, L]
    -> decoder (masked mean over positions -> Linear; or per position -> Linear for the LM)

The same config builds the spiking model (spiking=True) and its S4D baseline (spiking=False).
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from neurojoule.layers.adaptive import AdaptiveInput, AdaptiveSoftmax, cluster_bounds, cluster_dims
from neurojoule.layers.spiking_ssm import NORMS, SSMBackbone
from neurojoule.layers.ssm import INITS
from neurojoule.neuron import SSM_NEURON_MODES, get_surrogate
from neurojoule.neuron.sdn import SHIPPED_TAUS
from neurojoule.neuron.ssm_neuron import THRESHOLDS

PAD_ID = 0


@dataclass
class SSMConfig:
    """One SpikingSSM / S4D network. Defaults: the 6-layer LRA backbone with exact LIF neurons.

    Input: token ids in [0, vocab_size) with 0 padding (`vocab_size`), or real values with
    `in_channels` features per step; never both. `paired`: AAN-style document pairs [B, 2, L].
    `causal`: no position may see later ones (unidirectional kernel and layer norm).

    Language-model options (CausalLM only): `adaptive_cutoffs` turns on adaptive input
    embeddings and an adaptive softmax with clusters of d_model // div_val**i dimensions;
    `tie_weights` shares the output weights (and adaptive projections) with the input;
    `emb_dropout` and `softmax_dropout` drop entries of the embeddings and of the hidden
    state the softmax reads.
    """

    spiking: bool = True
    d_model: int = 256
    n_layers: int = 6
    d_state: int = 64
    bidirectional: bool = True
    prenorm: bool = True
    norm: str = "batch"
    dropout: float = 0.0
    tau: float = 0.125
    threshold: str = "channel"
    lif_mode: str = "bptt"  # exact LIF, any tau; "sdn" (fast training) needs a shipped tau
    surrogate: str = "triangle"
    dt_min: float = 1e-3
    dt_max: float = 1e-1
    init: str = "lin"
    trainable_B: bool = False
    vocab_size: int | None = None
    in_channels: int | None = None
    num_classes: int = 10
    paired: bool = False
    causal: bool = False
    adaptive_cutoffs: list[int] | None = None
    div_val: float = 4.0
    tie_weights: bool = False
    emb_dropout: float = 0.0
    softmax_dropout: float = 0.0

    def __post_init__(self):
        self._check_types()
        self._check_ranges()
        self._check_choices()
        self._check_combinations()

    def _check_types(self) -> None:
        for name in (
            "spiking",
            "bidirectional",
            "prenorm",
            "paired",
            "causal",
            "tie_weights",
            "trainable_B",
        ):
            _expect(isinstance(getattr(self, name), bool), name, "a bool", getattr(self, name))
        for name in ("d_model", "n_layers", "d_state", "num_classes"):
            _expect(_is_int(getattr(self, name)), name, "an int", getattr(self, name))
        for name in ("vocab_size", "in_channels"):
            value = getattr(self, name)
            _expect(value is None or _is_int(value), name, "an int or None", value)
        reals = ("dropout", "tau", "dt_min", "dt_max", "div_val", "emb_dropout", "softmax_dropout")
        for name in reals:
            value = getattr(self, name)
            _expect(_is_real(value), name, "a number", value)
        cutoffs = self.adaptive_cutoffs
        _expect(
            cutoffs is None or (isinstance(cutoffs, list | tuple) and all(map(_is_int, cutoffs))),
            "adaptive_cutoffs",
            "a list of ints or None",
            cutoffs,
        )

    def _check_ranges(self) -> None:
        for name in ("d_model", "n_layers", "num_classes"):
            _expect(getattr(self, name) >= 1, name, ">= 1", getattr(self, name))
        _expect(self.d_state >= 2 and self.d_state % 2 == 0, "d_state", "even, >= 2", self.d_state)
        for name in ("dropout", "emb_dropout", "softmax_dropout"):
            _expect(0 <= getattr(self, name) < 1, name, "in [0, 1)", getattr(self, name))
        _expect(0 < self.tau <= 1, "tau", "in (0, 1] (multiplicative decay)", self.tau)
        _expect(self.dt_min > 0, "dt_min", "> 0", self.dt_min)
        _expect(self.dt_max >= self.dt_min, "dt_max", f">= dt_min = {self.dt_min}", self.dt_max)
        if self.vocab_size is not None:
            _expect(self.vocab_size >= 2, "vocab_size", ">= 2 (id 0 pads)", self.vocab_size)
        if self.in_channels is not None:
            _expect(self.in_channels >= 1, "in_channels", ">= 1", self.in_channels)

    def _check_choices(self) -> None:
        for name, choices in (
            ("norm", NORMS),
            ("threshold", THRESHOLDS),
            ("lif_mode", SSM_NEURON_MODES),
            ("init", INITS),
        ):
            value = getattr(self, name)
            _expect(value in choices, name, f"one of {choices}", value)
        try:
            get_surrogate(self.surrogate)
        except (TypeError, ValueError) as error:
            raise ValueError(f"SSMConfig.surrogate: {error}") from None

    def _check_combinations(self) -> None:
        if self.vocab_size is not None and self.in_channels is not None:
            raise ValueError(
                "SSMConfig needs vocab_size (token input) or in_channels (real-valued input), "
                f"not both; got vocab_size={self.vocab_size}, in_channels={self.in_channels}"
            )
        if self.paired:
            _expect(self.vocab_size is not None, "vocab_size", "set when paired", None)
        if self.spiking and self.lif_mode == "sdn":
            _expect(
                self.tau in SHIPPED_TAUS,
                "tau",
                f"one of {SHIPPED_TAUS} for lif_mode='sdn'",
                self.tau,
            )
        if self.adaptive_cutoffs is not None:
            _expect(self.vocab_size is not None, "vocab_size", "set with adaptive_cutoffs", None)
            try:
                bounds = cluster_bounds(self.vocab_size, self.adaptive_cutoffs)
                cluster_dims(self.d_model, len(bounds) - 1, self.div_val)
            except ValueError as error:
                raise ValueError(f"SSMConfig.adaptive_cutoffs / div_val: {error}") from None
        if self.causal:
            _expect(not self.bidirectional, "bidirectional", "False when causal", True)
            # BatchNorm's batch statistics mix all positions in training mode: future tokens
            # would leak into earlier outputs.
            _expect(self.norm == "layer", "norm", "'layer' when causal", self.norm)


def _expect(condition: bool, field: str, expected: str, got) -> None:
    if not condition:
        raise ValueError(f"SSMConfig.{field} must be {expected}, got {got!r}")


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def ssm_config(config: SSMConfig | Mapping | None = None, **overrides) -> SSMConfig:
    """An SSMConfig from a config or a mapping of fields, with `overrides` applied on top."""
    fields = dataclasses.asdict(config) if isinstance(config, SSMConfig) else dict(config or {})
    fields.update(overrides)
    known = [f.name for f in dataclasses.fields(SSMConfig)]
    unknown = sorted(set(fields) - set(known))
    if unknown:
        raise ValueError(f"unknown SSMConfig fields {unknown}; known fields: {known}")
    return SSMConfig(**fields)


def _backbone(config: SSMConfig) -> SSMBackbone:
    block_kwargs = {
        "d_state": config.d_state,
        "bidirectional": config.bidirectional,
        "dt_min": config.dt_min,
        "dt_max": config.dt_max,
        "init": config.init,
        "trainable_B": config.trainable_B,
    }
    if config.spiking:
        block_kwargs.update(
            tau=config.tau,
            threshold=config.threshold,
            lif_mode=config.lif_mode,
            surrogate=config.surrogate,
        )
    return SSMBackbone(
        config.d_model,
        config.n_layers,
        spiking=config.spiking,
        block_kwargs=block_kwargs,
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
    if tokens.numel() and (tokens.min() < 0 or tokens.max() >= vocab_size):
        raise ValueError(
            f"expected token ids in [0, {vocab_size}), "
            f"got ids from {tokens.min().item()} to {tokens.max().item()}"
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
        elif not x.is_floating_point() or x.dim() != 3 or x.shape[-1] != config.in_channels:
            raise ValueError(
                f"expected a float tensor [B, L, {config.in_channels}] (in_channels), "
                f"got {x.dtype} of shape {tuple(x.shape)}"
            )


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


def _language_model_options(config: SSMConfig) -> dict:
    """The CausalLM-only fields that differ from their defaults."""
    defaults = SSMConfig()
    names = ("adaptive_cutoffs", "tie_weights", "emb_dropout", "softmax_dropout")
    return {n: getattr(config, n) for n in names if getattr(config, n) != getattr(defaults, n)}
