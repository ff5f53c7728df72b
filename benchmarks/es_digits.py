"""Weights without gradients on the 8x8 digits: OpenES against surrogate-gradient training of
the same dense SNN, the batched population against a loop over members, and a hard spike
budget met by the ES fitness.

    python benchmarks/es_digits.py [--generations 2000] [--threads 2] [--work runs/es-digits]

1. Population speed: one generation's population (100 members, a minibatch of 64) run as one
   vmap'd forward and member by member, alternately, median of repeats; their ratio.
2. `neurojoule evolve weights dense-snn --task digits` (hidden 64, T = 4: 4874 weights) for
   --generations generations, tested on the whole test split: accuracy, spikes and energy per
   image, wall seconds.
3. `neurojoule train dense-snn --task digits`, the same network and data, for as many steps as
   fit in the ES run's wall time (seconds per step measured on a first run of 100 steps).
4. The ES again with --spike-cap at half the spikes per image of run 2: is the cap met on the
   test split, and at what accuracy?
5. Steps 2 and 3 on Fashion-MNIST with the same shape of network (784 -> 64 -> 10).
`--speed-only` repeats step 1 alone and updates its numbers in the results file: on a machine
loaded by other jobs the two sides' times swing widely; measure them on an idle one.
Writes benchmarks/results_es_digits.json and the two training curves as es_digits.png.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from neurojoule.bench import machine_description
from neurojoule.models.registry import build_model
from neurojoule.search.es import ESConfig, OpenES, Population

HERE = Path(__file__).parent
RESULTS = HERE / "results_es_digits.json"
PLOT = HERE / "es_digits.png"
NETWORK = ["--set", "model_options.hidden=[64]", "--set", "model_options.steps=4"]
# the same network shape on 28x28 Fashion-MNIST: 784 -> 64 LIF -> 10, 50890 weights
FASHION = ["--task", "fashion-mnist", *NETWORK]
DIGITS = ["--task", "digits", *NETWORK]
NEUROJOULE = [sys.executable, "-m", "neurojoule"]


def population_speedup(repeats: int) -> dict:
    torch.manual_seed(0)
    population = Population(build_model("dense-snn", hidden=(64,), steps=4))
    members = OpenES(population.vector(), ESConfig(population=100)).ask()
    x = torch.rand(64, 1, 8, 8)
    times = {True: [], False: []}
    for i in range(repeats + 2):
        for batched in (True, False):
            start = time.perf_counter()
            population.run(members, x, batched=batched)
            if i >= 2:  # warm-up
                times[batched].append(time.perf_counter() - start)
    batched, looped = (statistics.median(times[key]) for key in (True, False))
    return {"batched_s": batched, "looped_s": looped, "ratio": looped / batched}


def neurojoule(argv: list[str], log: Path) -> tuple[dict, float]:
    print(f"[{time.strftime('%H:%M:%S')}] neurojoule {' '.join(argv)}", file=sys.stderr)
    start = time.perf_counter()
    with open(log, "w") as errors:
        done = subprocess.run(
            [*NEUROJOULE, *argv], stdout=subprocess.PIPE, stderr=errors, text=True
        )
    if done.returncode:
        sys.exit(f"neurojoule {argv[0]} failed; see {log}")
    return done.stdout, time.perf_counter() - start


def evolve(work: Path, name: str, case: list[str], generations: int, extra: list[str]) -> dict:
    out = work / name
    argv = ["evolve", "weights", "dense-snn", *case, "--out", str(out)]
    argv += ["--generations", str(generations), "--json", *extra]
    stdout, wall = neurojoule(argv, work / f"{name}.log")
    result = json.loads(stdout)
    per_sample = result["test"]["energy"]["totals"]["per_sample"]
    return {
        "test_accuracy": result["test"]["accuracy"],
        "spikes_per_sample": per_sample["spikes"],
        "energy_uj": per_sample["snn_energy_j"] * 1e6,
        "train_seconds": result["train_seconds"],
        "wall_s": wall,
        "generations": result["generations"],
        "best_generation": result["best"]["generation"],
        "curve": [(row["seconds"], row["val_accuracy"]) for row in result["history"]],
    }


def surrogate_gradient(work: Path, name: str, case: list[str], seconds: float) -> dict:
    """The same network trained by `neurojoule train` for the steps that fit in `seconds`
    (seconds per step measured on a first run of 100 steps), up to 1000 epochs."""
    calibration = work / f"{name}-calibration"
    argv = ["train", "dense-snn", *case, "--quiet", "--epochs", "1000"]
    neurojoule([*argv, "--max-steps", "100", "--out", str(calibration)], work / f"{name}-1.log")
    per_step = json.loads((calibration / "timing.json").read_text())["train_seconds"] / 100
    steps = max(1, round(seconds / per_step))
    out = work / name
    neurojoule([*argv, "--max-steps", str(steps), "--out", str(out)], work / f"{name}.log")
    train_seconds = json.loads((out / "timing.json").read_text())["train_seconds"]
    evaluated = ["eval", str(out), "--whole-split", "--json"]
    stdout, _ = neurojoule(evaluated, work / f"{name}-eval.log")
    tested = json.loads(stdout)
    return {
        "test_accuracy": tested["accuracy"],
        "spikes_per_sample": tested["energy"]["totals"]["per_sample"]["spikes"],
        "energy_uj": tested["energy"]["totals"]["per_sample"]["snn_energy_j"] * 1e6,
        "wall_s": train_seconds,
        "steps": steps,
        "curve": _lightning_curve(out, train_seconds / steps),
    }


def _lightning_curve(run: Path, per_step: float) -> list[tuple[float, float]]:
    """(seconds, validation accuracy) per validation from the run's metrics.csv."""
    import csv

    (metrics,) = run.glob("log/version_*/metrics.csv")
    rows = [row for row in csv.DictReader(metrics.open()) if row.get("val/acc")]
    return [((int(row["step"]) + 1) * per_step, float(row["val/acc"])) for row in rows]


def plot(es: dict, sg: dict, budget: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6.4, 4.2))
    for name, run in (("OpenES", es), ("surrogate gradient", sg), ("OpenES, spike cap", budget)):
        seconds, accuracy = zip(*run["curve"], strict=True)
        axes.plot(seconds, [100 * a for a in accuracy], label=name)
    axes.set_xlabel("training wall time (s)")
    axes.set_ylabel("validation accuracy (%)")
    axes.set_title("dense SNN (64 hidden LIF, T = 4) on 8x8 digits")
    axes.legend()
    figure.tight_layout()
    figure.savefig(PLOT, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generations", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--work", type=Path, default=Path("runs/es-digits"))
    parser.add_argument(
        "--speed-only",
        action="store_true",
        help="measure the population speed alone (on an idle machine) and update it in the "
        "results file",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    speed = population_speedup(args.repeats) | {"machine": machine_description()}
    print(
        f"population of 100, batch 64: batched {speed['batched_s'] * 1e3:.1f} ms, looped "
        f"{speed['looped_s'] * 1e3:.1f} ms, ratio {speed['ratio']:.2f}",
        file=sys.stderr,
    )
    if args.speed_only:
        results = json.loads(RESULTS.read_text())
        results |= {"batched_speedup": speed["ratio"], "population_timing": speed}
        results["speed_command"] = "python benchmarks/es_digits.py " + " ".join(sys.argv[1:])
        RESULTS.write_text(json.dumps(results, indent=2) + "\n")
        return
    args.work.mkdir(parents=True, exist_ok=True)
    es = evolve(args.work, "es", DIGITS, args.generations, [])
    sg = surrogate_gradient(args.work, "sg", DIGITS, es["train_seconds"])
    cap = math.floor(es["spikes_per_sample"] / 2)
    capped = ["--spike-cap", str(cap)]
    budget = evolve(args.work, "es-spike-cap", DIGITS, args.generations, capped)
    budget |= {"cap": cap, "met": budget["spikes_per_sample"] <= cap}
    fashion_es = evolve(args.work, "fashion-es", FASHION, args.generations, [])
    fashion_sg = surrogate_gradient(args.work, "fashion-sg", FASHION, fashion_es["train_seconds"])
    results = {
        "test_accuracy": es["test_accuracy"],
        "wall_s": es["train_seconds"],
        "batched_speedup": speed["ratio"],
        "surrogate_gradient": sg,
        "es": es,
        "spike_budget": budget,
        "population_timing": speed,
        "fashion_mnist": {
            "network": "dense-snn, 784 inputs -> 64 LIF -> 10, T = 4, 50890 weights",
            "es": fashion_es,
            "surrogate_gradient": fashion_sg,
        },
        "network": "dense-snn, 64 inputs -> 64 LIF (learned thresholds, tau 2) -> 10, T = 4, "
        "4874 weights",
        "settings": {
            "population": ESConfig.population,
            "sigma": ESConfig.sigma,
            "lr": ESConfig.lr,
            "batch_size": 64,
            "generations": args.generations,
        },
        "machine": machine_description(),
        "command": "python benchmarks/es_digits.py " + " ".join(sys.argv[1:]),
    }
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    plot(es, sg, budget)
    print(
        f"OpenES: test {es['test_accuracy']:.2%} in {es['train_seconds']:.0f} s "
        f"({es['spikes_per_sample']:.1f} spikes, {es['energy_uj']:.4g} µJ per image); "
        f"surrogate gradient at equal wall time ({sg['steps']} steps, {sg['wall_s']:.0f} s): "
        f"{sg['test_accuracy']:.2%} ({sg['spikes_per_sample']:.1f} spikes, "
        f"{sg['energy_uj']:.4g} µJ); spike cap {cap}: {budget['spikes_per_sample']:.1f} spikes "
        f"per image ({'met' if budget['met'] else 'NOT met'}), test {budget['test_accuracy']:.2%}; "
        f"batched population {speed['ratio']:.1f}x the loop; Fashion-MNIST: OpenES "
        f"{fashion_es['test_accuracy']:.2%} in {fashion_es['train_seconds']:.0f} s, surrogate "
        f"gradient {fashion_sg['test_accuracy']:.2%} in {fashion_sg['wall_s']:.0f} s; {RESULTS}"
    )


if __name__ == "__main__":
    main()
