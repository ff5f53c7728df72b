"""The Fashion-MNIST search on this CPU (issue 15's target), from a trained supernet to tested
networks: search the supernet (the CPU space's budget unless told), fine-tune the chosen front
members, and test them and the hand-designed spikformer on the whole test split.

    python benchmarks/search_fmnist.py --supernet RUN --reference SPIKFORMER_RUN \\
        [--algorithm evolution] [--members 3] [--epochs 2] [--work runs/search-fmnist]

Every step is a neurojoule command whose output goes to WORK/logs; a step whose result exists
is skipped and an interrupted search or fine-tuning resumes, so the script can be run again
after a kill. The members are the front's most accurate subnets (by validation accuracy)
among those that spend less validation energy than the reference, filled up by fitness.
Writes benchmarks/results_search_fmnist_cpu.json (--results):
{"front": [{"genome", "subnet", "val_accuracy", "val_energy_uj", "inherited_test_accuracy",
"test_accuracy", "energy_uj", "fine_tuned"}, ...], "reference": {"name": "spikformer",
"test_accuracy", "energy_uj"}, "budget": {...}}. The test accuracy and energy are those of
`neurojoule eval --whole-split` (the test split, batch norms folded, 45 nm table).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
NEUROJOULE = [sys.executable, "-m", "neurojoule"]


def step(name: str, argv: list[str], work: Path, seconds: dict) -> str:
    """Run a neurojoule command, its stderr into WORK/logs/NAME.log; return its stdout."""
    logs = work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    print(f"[{time.strftime('%H:%M:%S')}] {name}: neurojoule {' '.join(argv)}", flush=True)
    start = time.perf_counter()
    with open(logs / f"{name}.log", "a") as log:
        done = subprocess.run([*NEUROJOULE, *argv], stdout=subprocess.PIPE, stderr=log, text=True)
    seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{name} failed (exit {done.returncode}); see {logs / f'{name}.log'}")
    return done.stdout


def evaluation(path: Path, work: Path, name: str, seconds: dict, limit: int | None) -> dict:
    """Test accuracy and SNN energy per sample of a checkpoint or run folder (cached)."""
    cached = work / "evals" / f"{name}.json"
    if not cached.is_file():
        size = ["--limit", str(limit)] if limit else ["--whole-split"]
        out = step(
            f"eval-{name}", ["eval", str(path), "--split", "test", *size, "--json"], work, seconds
        )
        cached.parent.mkdir(parents=True, exist_ok=True)
        result = json.loads(out)
        cached.write_text(
            json.dumps(
                {
                    "test_accuracy": result["accuracy"],
                    "energy_uj": result["energy"]["totals"]["per_sample"]["snn_energy_j"] * 1e6,
                    "samples": result["samples"],
                }
            )
        )
    return json.loads(cached.read_text())


def choose(result: dict, count: int) -> list[dict]:
    reference = result["reference"]
    limit = reference["energy_uj"] if reference else float("inf")
    cheaper = sorted(
        (e for e in result["front"] if e["energy_uj"] < limit), key=lambda e: -e["val_accuracy"]
    )
    rest = sorted(result["front"], key=lambda e: -e["fitness"])
    chosen = cheaper[:count]
    chosen += [e for e in rest if e not in chosen][: count - len(chosen)]
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--supernet", required=True, help="a supernet run folder")
    parser.add_argument("--reference", required=True, help="the hand-designed spikformer's run")
    parser.add_argument("--algorithm", default="evolution", choices=["evolution", "nsga2"])
    parser.add_argument("--members", type=int, default=3, help="front members fine-tuned")
    parser.add_argument("--epochs", type=int, default=2, help="fine-tuning epochs (0: none)")
    parser.add_argument("--work", default="runs/search-fmnist", help="work folder")
    parser.add_argument("--results", default=str(ROOT / "results_search_fmnist_cpu.json"))
    parser.add_argument("--search-args", default="", help="more `neurojoule search` arguments")
    parser.add_argument("--train-set", action="append", default=[], help="--set for fine-tuning")
    parser.add_argument("--test-limit", type=int, help="test samples (default: the whole split)")
    args = parser.parse_args()
    work, seconds = Path(args.work), {}

    search = work / "search"
    if not (search / "front.json").is_file():
        argv = ["search", "--supernet", args.supernet, "--algorithm", args.algorithm]
        argv += ["--out", str(search), "--quiet", *args.search_args.split()]
        if (search / "search.json").is_file():
            argv.append("--resume")
        step("search", argv, work, seconds)
    result = json.loads((search / "front.json").read_text())

    front = []
    for i, entry in enumerate(choose(result, args.members)):
        folder = work / f"member-{i}"
        subnet_ckpt = folder / "subnet.ckpt"
        if not subnet_ckpt.is_file():
            argv = ["supernet", "extract", args.supernet, "--subnet", json.dumps(entry["genome"])]
            step(f"extract-{i}", [*argv, "--out", str(subnet_ckpt)], work, seconds)
        inherited = evaluation(subnet_ckpt, work, f"inherited-{i}", seconds, args.test_limit)
        tested = inherited
        if args.epochs:
            run = folder / "run"
            if not (run / "timing.json").is_file():
                argv = ["train", "spikformer", "--task", "fashion-mnist", "--config"]
                argv += ["fashion-mnist-spikformer", "--init", str(subnet_ckpt), "--out", str(run)]
                argv += ["--epochs", str(args.epochs), "--quiet"]
                argv += [f"--set={item}" for item in args.train_set]
                if (run / "checkpoints" / "last.ckpt").is_file():
                    argv.append("--resume")
                step(f"finetune-{i}", argv, work, seconds)
            tested = evaluation(run, work, f"finetuned-{i}", seconds, args.test_limit)
        front.append(
            {
                "genome": entry["genome"],
                "subnet": entry["subnet"],
                "val_accuracy": entry["val_accuracy"],
                "val_energy_uj": entry["energy_uj"],
                "inherited_test_accuracy": inherited["test_accuracy"],
                "test_accuracy": tested["test_accuracy"],
                "energy_uj": tested["energy_uj"],
                "fine_tuned": bool(args.epochs),
            }
        )
    reference = {
        "name": "spikformer",
        **evaluation(Path(args.reference), work, "reference", seconds, args.test_limit),
    }
    for entry in front:
        entry["beats_reference"] = (
            entry["test_accuracy"] > reference["test_accuracy"]
            and entry["energy_uj"] < reference["energy_uj"]
        )
    budget = {
        "algorithm": result["algorithm"],
        "space": result["space"],
        "population": result["settings"]["population"],
        "generations": result["generations"],
        "subnets_evaluated": result["evaluated"],
        "validation_samples": result["validation"]["samples"],
        "search_seconds": result["seconds"],
        "fine_tuning_epochs": args.epochs,
        "step_seconds_this_invocation": seconds,
    }
    output = {"front": front, "reference": reference, "budget": budget}
    Path(args.results).write_text(json.dumps(output, indent=2) + "\n")
    for entry in front:
        print(
            f"{entry['test_accuracy'] * 100:.2f} % at {entry['energy_uj']:.1f} µJ "
            f"(inherited {entry['inherited_test_accuracy'] * 100:.2f} %)"
            + (" beats the reference" if entry["beats_reference"] else "")
        )
    print(
        f"reference spikformer: {reference['test_accuracy'] * 100:.2f} % at "
        f"{reference['energy_uj']:.1f} µJ; written {args.results}"
    )


if __name__ == "__main__":
    main()
