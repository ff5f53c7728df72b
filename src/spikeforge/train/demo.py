"""The built-in demo: a small LIF network trained on scikit-learn's digits, then measured."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from spikeforge.data import load_digits_split
from spikeforge.energy import EnergyReport, get_energy_table, measure_energy
from spikeforge.models import DenseSNN


@dataclass
class DemoResult:
    accuracy: float
    train_seconds: float
    epochs: int
    energy: EnergyReport

    def to_dict(self) -> dict:
        return {
            "task": "digits",
            "model": "DenseSNN",
            "test_accuracy": self.accuracy,
            "epochs": self.epochs,
            "train_seconds": self.train_seconds,
            "energy": self.energy.to_dict(),
        }


def run_demo(
    seed: int = 0,
    epochs: int = 60,
    batch_size: int = 64,
    progress: bool = True,
    energy_table: str = "45nm",
) -> DemoResult:
    """Train DenseSNN on digits for `epochs` epochs; report test accuracy and energy."""
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs and batch size must be >= 1, got {epochs} and {batch_size}")
    table = get_energy_table(energy_table)  # a bad table fails before training, not after
    torch.manual_seed(seed)
    train_set, test_set = load_digits_split(seed=seed)
    model = DenseSNN(in_features=64, hidden=(512, 256), steps=10)
    loader = DataLoader(
        train_set,
        batch_size=batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(seed),
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs * len(loader))
    start = time.perf_counter()
    bar = tqdm(range(epochs), desc="demo: training on digits", unit="epoch", disable=not progress)
    for _ in bar:
        model.train()
        for x, y in loader:
            loss = torch.nn.functional.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
        bar.set_postfix(loss=f"{loss.item():.3f}")
    train_seconds = time.perf_counter() - start
    model.eval()
    test_x, test_y = test_set.tensors
    with torch.no_grad():
        accuracy = (model(test_x).argmax(1) == test_y).float().mean().item()
    energy = measure_energy(model, [test_x], table=table)
    return DemoResult(accuracy, train_seconds, epochs, energy)
