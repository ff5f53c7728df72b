"""The built-in demo: SpikingSSM on a small ListOps set, or a LIF network on digits."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from neurojoule.data import load_digits_split
from neurojoule.energy import EnergyReport, get_energy_table, measure_energy
from neurojoule.models import DenseSNN, DenseSNNConfig

DEMO_EPOCHS = {"listops": 3, "digits": 60}


@dataclass
class DemoResult:
    task: str
    model: str
    accuracy: float
    train_seconds: float
    epochs: int
    energy: EnergyReport
    run_dir: str | None = None  # the Lightning run (checkpoints, metrics.csv), where there is one
    trained_lif: str | None = None  # the mode the spiking SSM layers trained in, and why
    evaluated: str | None = None  # which checkpoint the accuracy is of

    def to_dict(self) -> dict:
        return {
            "task": self.task,
            "model": self.model,
            "test_accuracy": self.accuracy,
            "epochs": self.epochs,
            "train_seconds": self.train_seconds,
            "run_dir": self.run_dir,
            "trained_lif": self.trained_lif,
            "evaluated": self.evaluated,
            "energy": self.energy.to_dict(),
        }

    def format(self) -> str:
        """The report `neurojoule demo` prints."""
        trained = f", spiking layers trained in {self.trained_lif}" if self.trained_lif else ""
        epochs = f"{self.epochs} epoch{'s' if self.epochs != 1 else ''}"
        lines = [
            f"{self.model} on {self.task}: test accuracy {self.accuracy * 100:.2f} % "
            f"({epochs}, {self.train_seconds:.0f} s of training{trained}; "
            "evaluated with the exact LIF)"
        ]
        if self.evaluated:
            lines.append(f"checkpoint: {self.evaluated}")
        lines.append(self.energy.format_table())
        if self.run_dir:
            lines.append(f"run folder: {self.run_dir} (checkpoints, metrics.csv)")
        return "\n".join(lines)


def run_demo(
    task: str = "listops",
    seed: int = 0,
    epochs: int | None = None,
    progress: bool = True,
    energy_table: str = "45nm",
    runs: str | Path = "runs",
) -> DemoResult:
    """The demo: SpikingSSM on a CPU-sized ListOps set (default), or a LIF network on digits."""
    if task not in DEMO_EPOCHS:
        raise ValueError(f"demo task must be one of {sorted(DEMO_EPOCHS)}, got {task!r}")
    get_energy_table(energy_table)  # a bad table fails before training, not after
    epochs = epochs or DEMO_EPOCHS[task]
    if task == "digits":
        return run_digits_demo(seed, epochs, progress=progress, energy_table=energy_table)
    return run_listops_demo(seed, epochs, progress, energy_table, runs)


def run_listops_demo(
    seed: int, epochs: int, progress: bool, energy_table: str, runs: str | Path
) -> DemoResult:
    """Train SpikingSSM with the listops-cpu config, then evaluate its best checkpoint (by
    validation accuracy) with the exact LIF."""
    from neurojoule.train import evaluate, load_config, train

    config = load_config("listops-cpu", [f"optim.epochs={epochs}"], seed=seed)
    out = Path(runs) / f"demo-listops-{time.strftime('%Y%m%d-%H%M%S')}"
    start = time.perf_counter()
    trained = train(config, out, progress=progress)
    seconds = time.perf_counter() - start
    result = evaluate(trained.tested_checkpoint, energy_table=energy_table)
    choice = trained.lif_mode
    return DemoResult(
        "listops",
        config.model,
        result["accuracy"],
        seconds,
        epochs,
        result["energy"],
        str(out),
        trained_lif=f"{choice['chosen']} mode ({choice['rule']})" if choice else None,
        evaluated=result["evaluated"],
    )


def run_digits_demo(
    seed: int = 0,
    epochs: int = 60,
    batch_size: int = 64,
    progress: bool = True,
    energy_table: str = "45nm",
) -> DemoResult:
    """Train DenseSNN on digits for `epochs` epochs; report test accuracy and energy."""
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs and batch size must be >= 1, got {epochs} and {batch_size}")
    table = get_energy_table(energy_table)
    torch.manual_seed(seed)
    train_set, test_set = load_digits_split(seed=seed)
    model = DenseSNN(DenseSNNConfig(hidden=(512, 256), steps=10))  # 8x8 digits
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
    return DemoResult("digits", "DenseSNN", accuracy, train_seconds, epochs, energy)
