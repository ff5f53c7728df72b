"""A fully connected spiking classifier: the smallest whole network, used by the demo."""

from __future__ import annotations

import torch
from torch import nn

from neurojoule.neuron import LIF


class DenseSNN(nn.Module):
    """Direct encoding (the input repeated `steps` times), Linear -> LIF hidden layers, a linear
    read-out averaged over time. Tensors inside are time-first [T, B, features]; the first
    Linear sees real values, every later one only spikes."""

    def __init__(
        self,
        in_features: int,
        hidden: tuple[int, ...] = (256, 128),
        classes: int = 10,
        steps: int = 8,
        tau: float = 2.0,
        surrogate: str = "sigmoid(alpha=4)",
        learn_threshold: bool = True,
    ):
        super().__init__()
        if steps < 1 or not hidden:
            raise ValueError(f"DenseSNN needs steps >= 1 and a hidden layer, got {steps}, {hidden}")
        self.in_features, self.steps = in_features, steps
        layers: list[nn.Module] = []
        width = in_features
        for size in hidden:
            layers.append(nn.Linear(width, size))
            layers.append(
                LIF(
                    time_dim=0,
                    tau=tau,
                    decay="input",
                    surrogate=surrogate,
                    channels=size,
                    channel_dim=-1,
                    learn_threshold=learn_threshold,
                )
            )
            width = size
        self.features = nn.Sequential(*layers)
        self.readout = nn.Linear(width, classes)

    @property
    def time_steps(self) -> int:
        """Steps of the direct encoding (read by the energy counter)."""
        return self.steps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 2 or x.shape[1] != self.in_features:
            raise ValueError(
                f"DenseSNN expects input [batch, {self.in_features}], got {tuple(x.shape)}"
            )
        repeated = x.unsqueeze(0).expand(self.steps, *x.shape)
        return self.readout(self.features(repeated)).mean(0)
