"""Issue 16's neuron-parameter target: CMA-ES over the thresholds and time constants of a
trained network, weights frozen, for less energy per sample at no more than half a point of
accuracy lost.

    python benchmarks/neuron_evolution.py RUN [--genes threshold,time] [--work DIR]
        [--results JSON] [more `neurojoule evolve neurons` arguments, e.g. --shared]

Runs `neurojoule evolve neurons RUN --json --plot` (its defaults: 15 generations of 12
settings on 2000 validation samples, accuracy drop 0.5 points) into WORK (default
runs/neuron-evolution) and writes benchmarks/results_neuron_evolution.json (or --results):
the model, the trained ("before") and chosen ("after") network on the whole test split
(accuracy, energy, spike rate, ANN/SNN energy ratio), the energy saved and the accuracy
lost, the front, the settings, the wall time and the machine. The front's plot goes to
benchmarks/neuron_evolution.png (beside another --results, with its name).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from neurojoule.bench import machine_description

HERE = Path(__file__).parent
RESULTS = HERE / "results_neuron_evolution.json"
PLOT = HERE / "neuron_evolution.png"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="a trained run folder or checkpoint")
    parser.add_argument("--genes", default="threshold,time")
    parser.add_argument("--work", type=Path, default=Path("runs/neuron-evolution"))
    parser.add_argument("--results", type=Path, default=RESULTS, help="the JSON to write")
    args, extra = parser.parse_known_args()  # the rest goes to `neurojoule evolve neurons`
    plot = PLOT if args.results == RESULTS else args.results.with_suffix(".png")
    command = [sys.executable, "-m", "neurojoule", "evolve", "neurons", args.run]
    command += ["--genes", args.genes, "--out", str(args.work), "--plot", str(plot), "--json"]
    command += [*(["--resume"] if (args.work / "search.pkl").is_file() else []), *extra]
    print(" ".join(command[1:]), file=sys.stderr)
    start = time.perf_counter()
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True)
    if done.returncode:
        sys.exit(f"evolve neurons failed (exit {done.returncode})")
    result = json.loads(done.stdout)
    before, after = result["before"], result["after"]
    saved = 1 - after["energy_uj"] / before["energy_uj"]
    lost = 100 * (before["test_accuracy"] - after["test_accuracy"])
    results = {
        "model": result["model"],
        "task": result["task"],
        "checkpoint": result["checkpoint"],
        "algorithm": result["algorithm"],
        "before": before,
        "after": after,
        "energy_saved": saved,
        "accuracy_points_lost": lost,
        "target_met": saved >= 0.2 and lost <= 0.5,
        "chosen": result["best"],
        "front": result["front"],
        "settings": result["settings"],
        "evaluated": result["evaluated"],
        "search_seconds": result["seconds"],
        "wall_s": time.perf_counter() - start,
        "machine": machine_description(),
        "command": "python benchmarks/neuron_evolution.py " + " ".join(sys.argv[1:]),
    }
    args.results.write_text(json.dumps(results, indent=2) + "\n")
    print(
        f"{result['model']} on {result['task']}: test accuracy {before['test_accuracy']:.2%} -> "
        f"{after['test_accuracy']:.2%} ({lost:+.2f} points lost), energy "
        f"{before['energy_uj']:.4g} -> {after['energy_uj']:.4g} µJ per sample ({saved:.1%} "
        f"saved); target (>= 20 % saved, <= 0.5 points lost) "
        f"{'met' if results['target_met'] else 'not met'}; {args.results}"
    )


if __name__ == "__main__":
    main()
