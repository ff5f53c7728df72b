"""The configuration of the SpikingSSM / S4D family: one flat dataclass, as YAML sees it
(model_options.d_state, ...), checked field by field, and built once into the kernel config
and the neuron config that the layers take whole."""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from dataclasses import dataclass

from neurojoule.layers.adaptive import cluster_bounds, cluster_dims
from neurojoule.layers.spiking_ssm import NORMS
from neurojoule.layers.ssm import S4DKernelConfig
from neurojoule.models.registry import merge_config
from neurojoule.neuron import LIF_MODES, SSMNeuronConfig
from neurojoule.neuron.sdn import SHIPPED_DECAYS


@dataclass
class SSMConfig:
    """One SpikingSSM / S4D network. Defaults: the 6-layer LRA backbone with exact LIF neurons.

    Input: token ids in [0, vocab_size) with 0 padding (`vocab_size`), or real values with
    `in_channels` features per step; never both. `paired`: AAN-style document pairs [B, 2, L].
    `causal`: no position may see later ones (unidirectional kernel and layer norm).
    `decay`: the neurons' multiplicative decay factor in [0, 1] (SpikingSSM: 0.125).

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
    decay: float = 0.125
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

    def kernel_config(self) -> S4DKernelConfig:
        """The options of every S4D kernel, passed whole down the layers."""
        return S4DKernelConfig(
            d_state=self.d_state,
            dt_min=self.dt_min,
            dt_max=self.dt_max,
            init=self.init,
            bidirectional=self.bidirectional,
            trainable_B=self.trainable_B,
        )

    def neuron_config(self) -> SSMNeuronConfig | None:
        """The neuron of every spiking block; None for the S4D baseline."""
        if not self.spiking:
            return None
        return SSMNeuronConfig(
            decay=self.decay, threshold=self.threshold, mode=self.lif_mode, surrogate=self.surrogate
        )

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
        reals = (
            "dropout",
            "decay",
            "dt_min",
            "dt_max",
            "div_val",
            "emb_dropout",
            "softmax_dropout",
        )
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
        for name in ("dropout", "emb_dropout", "softmax_dropout"):
            _expect(0 <= getattr(self, name) < 1, name, "in [0, 1)", getattr(self, name))
        if self.vocab_size is not None:
            _expect(self.vocab_size >= 2, "vocab_size", ">= 2 (id 0 pads)", self.vocab_size)
        if self.in_channels is not None:
            _expect(self.in_channels >= 1, "in_channels", ">= 1", self.in_channels)

    def _check_choices(self) -> None:
        for name, choices in (("norm", NORMS), ("lif_mode", LIF_MODES)):
            value = getattr(self, name)
            _expect(value in choices, name, f"one of {choices}", value)
        # the kernel and neuron options are checked where they are defined
        try:
            self.kernel_config()
            SSMNeuronConfig(self.decay, self.threshold, self.lif_mode, self.surrogate)
        except (TypeError, ValueError) as error:
            raise ValueError(f"SSMConfig: {error}") from None

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
                self.decay in SHIPPED_DECAYS,
                "decay",
                f"one of {SHIPPED_DECAYS} for lif_mode='sdn'",
                self.decay,
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
    return merge_config(SSMConfig, config, overrides)
