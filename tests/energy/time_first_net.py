"""A tiny time-first network shared by the energy tests."""

import torch
from torch import nn

from neurojoule.neuron import LIF


class TimeFirstNet(nn.Module):
    """fc1 (identity) -> LIF(decay 0.5) -> fc2, on [T, B, 3]."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(3, 3)
        self.lif = LIF(time_dim=0, decay=0.5)
        self.fc2 = nn.Linear(3, 2)
        with torch.no_grad():
            self.fc1.weight.copy_(torch.eye(3))
            self.fc1.bias.zero_()

    def forward(self, x):
        return self.fc2(self.lif(self.fc1(x)))
