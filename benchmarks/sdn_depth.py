"""Side experiment: does depth help the SDN for tau 0.25 and 0.5?

The SDN's window form (see SurrogateDynamicNetwork._forward_windows) with `depth` residual
C -> C layers instead of the published one, trained at a tenth of the published budget
(20 000 sequences of 1024 steps, 20 epochs, batch 64, AdamW lr 0.01 wd 0.01, cosine,
SmoothL1) and scored on 500 fresh N(0,1) sequences. Not part of the package yet.
`python benchmarks/sdn_depth.py TAU`; results in benchmarks/results_sdn_depth_cpu.txt.
"""

import sys
import time

import torch
import torch.nn.functional as F
from torch import nn

from spikeforge.neuron.sdn import exact_targets
from spikeforge.train.sdn import make_dataset


class DeepWindowSDN(nn.Module):
    def __init__(self, channels: int = 8, kernel_size: int = 8, depth: int = 1):
        super().__init__()
        self.kernel_size = kernel_size
        self.encode = nn.Linear(kernel_size, channels)
        self.encode_norm = nn.BatchNorm1d(channels)
        self.mixes = nn.ModuleList(nn.Linear(channels, channels) for _ in range(depth))
        self.norms = nn.ModuleList(nn.BatchNorm1d(channels) for _ in range(depth))
        self.decode = nn.Linear(channels, 1)

    def forward(self, y):
        batch, length = y.shape
        k = self.kernel_size
        windows = F.pad(y, (k, 0)).unfold(1, k, 1)[:, :length].reshape(-1, k)
        z = torch.relu(self.encode_norm(self.encode(windows)))
        for mix, norm in zip(self.mixes, self.norms, strict=True):
            z = torch.relu(norm(mix(z)) + z)
        return self.decode(z).reshape(batch, length)


def train_and_score(tau, depth, sequences=20_000, epochs=20, batch=64):
    y, mem = make_dataset(tau, sequences, 1024, seed=0)
    torch.manual_seed(0)
    net = DeepWindowSDN(depth=depth)
    optimizer = torch.optim.AdamW(net.parameters(), lr=0.01, weight_decay=0.01)
    steps = len(y) // batch
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs * steps)
    for _ in range(epochs):
        order = torch.randperm(len(y))
        for i in range(steps):
            idx = order[i * batch : (i + 1) * batch]
            loss = F.smooth_l1_loss(net(y[idx]), mem[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
    test = torch.randn(500, 1024, generator=torch.Generator().manual_seed(7))
    test_mem, spikes = exact_targets(test, tau)
    with torch.no_grad():
        predicted = net.eval()(test)
    agreement = ((predicted + test - 1 >= 0).float() == spikes).float().mean().item()
    return agreement, (predicted - test_mem).abs().mean().item()


if __name__ == "__main__":
    torch.set_num_threads(2)
    tau = float(sys.argv[1]) if len(sys.argv) > 1 else 0.25
    for depth in (1, 3, 5):
        start = time.perf_counter()
        agreement, mae = train_and_score(tau, depth)
        print(
            f"tau {tau:g}, depth {depth}: agreement {agreement * 100:.3f} %, MAE {mae:.2e}, "
            f"{time.perf_counter() - start:.0f} s",
            flush=True,
        )
