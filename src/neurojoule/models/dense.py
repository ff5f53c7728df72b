"""A fully connected spiking classifier: the smallest whole network, used by the digits demo."""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from neurojoule.layers.checks import check_finite
from neurojoule.models.registry import merge_config, register_model
from neurojoule.models.vision import DIGITS, DirectEncodedClassifier, image_shape
from neurojoule.neuron import LIF


@dataclasses.dataclass
class DenseSNNConfig:
    """Images of `in_channels` x `image_size` x `image_size` values (or those values flat),
    `hidden` LIF layers, `steps` of direct encoding; the LIF's input-decay time constant `tau`."""

    image_size: int = 8
    in_channels: int = 1
    num_classes: int = 10
    hidden: tuple[int, ...] = (256, 128)
    steps: int = 8
    tau: float = 2.0
    surrogate: str = "sigmoid(alpha=4)"
    learn_threshold: bool = True

    def __post_init__(self):
        self.hidden = tuple(self.hidden)
        if self.steps < 1 or not self.hidden or min(self.hidden) < 1:
            raise ValueError(
                f"DenseSNN needs steps >= 1 and at least one hidden layer of width >= 1, got "
                f"steps={self.steps}, hidden={self.hidden}"
            )
        if self.image_size < 1 or self.in_channels < 1 or self.num_classes < 1:
            raise ValueError(
                "DenseSNN needs image_size, in_channels and num_classes >= 1, got "
                f"{self.image_size}, {self.in_channels}, {self.num_classes}"
            )

    @property
    def in_features(self) -> int:
        return self.in_channels * self.image_size**2


class DenseSNN(DirectEncodedClassifier):
    """Direct encoding (the input repeated `steps` times), Linear -> LIF hidden layers, a linear
    read-out averaged over time. Input: images [B, C, S, S] or the same values flat [B, C*S*S].
    Tensors inside are time-first [T, B, features]; the first Linear sees real values, every
    later one only spikes."""

    def __init__(self, config: DenseSNNConfig):
        super().__init__()
        self.config = config
        layers: list[nn.Module] = []
        width = config.in_features
        for size in config.hidden:
            layers.append(nn.Linear(width, size))
            layers.append(
                LIF(
                    time_dim=0,
                    tau=config.tau,
                    surrogate=config.surrogate,
                    channels=size,
                    channel_dim=-1,
                    learn_threshold=config.learn_threshold,
                )
            )
            width = size
        self.features = nn.Sequential(*layers)
        self.readout = nn.Linear(width, config.num_classes)

    def step_logits(self, x: torch.Tensor) -> torch.Tensor:
        """The read-out at each time step, [T, B, classes] (their mean is the logits)."""
        c = self.config
        image = (c.in_channels, c.image_size, c.image_size)
        if not x.is_floating_point() or tuple(x.shape[1:]) not in (image, (c.in_features,)):
            raise ValueError(
                f"DenseSNN expects float images [batch, {', '.join(map(str, image))}] or "
                f"[batch, {c.in_features}], got {x.dtype} of shape {tuple(x.shape)}"
            )
        if x.shape[0] == 0:
            raise ValueError("DenseSNN got a batch of 0 inputs; expected at least 1")
        check_finite(x, "DenseSNN input")
        flat = x.flatten(1)
        repeated = flat.unsqueeze(0).expand(c.steps, *flat.shape)
        return self.readout(self.features(repeated))


@register_model("dense-snn", input_shape=image_shape(DIGITS))
def dense_snn(config: DenseSNNConfig | dict | None = None, **overrides) -> DenseSNN:
    """Fully connected SNN for 8x8 digits: Linear -> LIF layers 256-128, T=8, learned thresholds"""
    return DenseSNN(merge_config(DenseSNNConfig, config, overrides, preset=DIGITS))
