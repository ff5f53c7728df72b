"""What spiking costs in a training step: SpikingSSM against the same-size S4D, side by side.

`python benchmarks/spiking_overhead.py [--threads 2] [--repeats 15] [--rounds 5] [--profile]`
builds, for each CPU config (sequential Fashion-MNIST and ListOps), the spiking model (exact
LIF, bptt) and its non-spiking twin (GELU where the spiking block fires), and times one whole
training step of each on the same real batch of the training split:
- the module's forward and loss, with the spike-rate recording and the rate penalty the
  config asks for;
- backward;
- the AdamW step.
The two models run in turn, so a load on the machine slows both alike. Writes
benchmarks/results_spiking_overhead_cpu.json with one row per config: the median seconds of
each and the median of the rounds' ratios, each round's ratio kept beside it. `--profile`
prints, on stderr, the operators whose time differs most between the two steps.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import warnings
from dataclasses import asdict
from pathlib import Path

import torch

from neurojoule.bench import machine_description
from neurojoule.train.config import load_config
from neurojoule.train.module import ClassifierModule
from neurojoule.train.splits import make_splits, training_loader

CONFIGS = ("fashion-mnist-seq-cpu", "listops-cpu")
MODELS = ("spiking-ssm", "s4d")
RESULTS = Path(__file__).parent / "results_spiking_overhead_cpu.json"


class TrainingStep:
    """One optimizer step of `model` as `neurojoule train` runs it, on a fixed batch."""

    def __init__(self, config_name: str, model: str, batch):
        config = load_config(config_name, ["lif_mode=bptt"], model=model)
        _, _, _, info = make_splits(config)
        torch.manual_seed(config.seed)
        self.module = ClassifierModule(config.to_dict(), asdict(info)).train()
        self.optimizer = torch.optim.AdamW(self.module.parameters(), lr=config.optim.lr)
        self.module._begin_stage("train")  # the spike-rate hooks of a training epoch
        self.batch = batch

    def __call__(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        self.module._step_rates = []
        self.module._step(self.batch, "train").backward()
        self.optimizer.step()


def first_batch(config_name: str):
    config = load_config(config_name, [])
    train, _, _, _ = make_splits(config)
    return next(iter(training_loader(train, config.optim.batch_size, config.seed)))


def measure(config_name: str, repeats: int, rounds: int) -> dict:
    """`rounds` rounds of `repeats` alternating steps; the row's seconds and ratio are the
    medians over the rounds, and every round's ratio is kept (the machine's own spread)."""
    batch = first_batch(config_name)
    steps = {model: TrainingStep(config_name, model, batch) for model in MODELS}
    for step in steps.values():  # warm-up: compilation, allocator
        for _ in range(3):
            step()
    per_round = []
    for _ in range(rounds):
        seconds: dict[str, list[float]] = {model: [] for model in MODELS}
        for _ in range(repeats):
            for model, step in steps.items():
                start = time.perf_counter()
                step()
                seconds[model].append(time.perf_counter() - start)
        per_round.append(tuple(statistics.median(seconds[model]) for model in MODELS))
    spiking, s4d = (statistics.median(values) for values in zip(*per_round, strict=True))
    return {
        "config": config_name,
        "batch_shape": list(batch[0].shape),
        "spiking_step_s": spiking,
        "s4d_step_s": s4d,
        "ratio": statistics.median(a / b for a, b in per_round),
        "round_ratios": [a / b for a, b in per_round],
        "repeats": repeats,
        "rounds": rounds,
        "steps": steps,
    }


def profile_difference(steps: dict, top: int = 15) -> str:
    """The operators whose self time per step differs most between the two models."""
    from torch.profiler import profile

    per_model = {}
    for model, step in steps.items():
        with profile() as recorded:
            for _ in range(3):
                step()
        per_model[model] = {
            event.key: (event.self_cpu_time_total / 3e3, event.count // 3)
            for event in recorded.key_averages()
        }
    spiking, s4d = (per_model[model] for model in MODELS)
    names = sorted(
        set(spiking) | set(s4d),
        key=lambda name: -(spiking.get(name, (0, 0))[0] - s4d.get(name, (0, 0))[0]),
    )
    lines = [f"{'operator':48} {'spiking ms':>10} {'calls':>6} {'s4d ms':>8} {'calls':>6}"]
    for name in names[:top]:
        (a, na), (b, nb) = spiking.get(name, (0, 0)), s4d.get(name, (0, 0))
        lines.append(f"{name[:48]:48} {a:10.2f} {na:6d} {b:8.2f} {nb:6d}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=15, help="alternating steps a round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", message=".*self.log")  # the step runs without a Trainer
    rows = []
    for name in CONFIGS:
        print(f"timing {name} ...", file=sys.stderr)
        row = measure(name, args.repeats, args.rounds)
        if args.profile:
            print(f"{name}:\n{profile_difference(row['steps'])}", file=sys.stderr)
        del row["steps"]
        rows.append(row)
        print(
            f"{name}: spiking {row['spiking_step_s']:.4f} s, s4d {row['s4d_step_s']:.4f} s, "
            f"ratio {row['ratio']:.3f} (rounds: "
            + ", ".join(f"{r:.3f}" for r in row["round_ratios"])
            + ")"
        )
    result = {
        "rows": rows,
        "machine": machine_description(),
        "threads": args.threads,
        "command": "python benchmarks/spiking_overhead.py " + " ".join(sys.argv[1:]),
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
