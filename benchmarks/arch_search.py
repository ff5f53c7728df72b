"""Issue 16's architecture searches by short training, from a space to tested networks:
search the space (its default budget unless told), then test every front member and the
hand-designed reference, trained alike, on the whole test split.

    python benchmarks/arch_search.py --space ssm-listops-cpu --task listops \\
        --results benchmarks/results_arch_search_listops.json [--work DIR] \\
        [more `neurojoule search` arguments, e.g. --set lif_mode=bptt --proxy]

Every step is a neurojoule command whose output goes to WORK/logs (search_fmnist.step); an
interrupted search resumes when the script is run again. Writes RESULTS:
{"front": [{"subnet", "val_accuracy", "val_energy_uj", "test_accuracy", "energy_uj",
"training"}, ...], "reference": {"name", "subnet", "test_accuracy", "energy_uj", ...},
"dominating": [front indices that beat the reference on test accuracy and energy],
"budget": {...}, "proxy": {...}}. Test accuracy and energy are those of `neurojoule eval
--whole-split` on each candidate's best checkpoint (batch norms folded, 45 nm table); the
front itself is chosen on the validation split. The search's plot goes beside RESULTS.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from search_fmnist import evaluation, step

from neurojoule.bench import machine_description


def tested(entry: dict, work: Path, seconds: dict) -> dict:
    """A front member or the reference with its test accuracy and energy."""
    training = entry["training"]
    checkpoint = work / "candidates" / training["run"] / training["checkpoint"]
    test = evaluation(checkpoint, work, training["run"], seconds, None)
    return {
        "subnet": entry["subnet"],
        "val_accuracy": entry["val_accuracy"],
        "val_energy_uj": entry["energy_uj"],
        "test_accuracy": test["test_accuracy"],
        "energy_uj": test["energy_uj"],
        "params": entry["params"],
        "spike_rate": entry["spike_rate"],
        "training": training,
    }


def dominates(a: dict, b: dict) -> bool:
    """`a` at least as accurate and as cheap as `b` on the test split, better in one."""
    no_worse = a["test_accuracy"] >= b["test_accuracy"] and a["energy_uj"] <= b["energy_uj"]
    return no_worse and (a["test_accuracy"], -a["energy_uj"]) != (
        b["test_accuracy"],
        -b["energy_uj"],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", required=True)
    parser.add_argument("--task", required=True)
    parser.add_argument("--results", type=Path, required=True)
    parser.add_argument("--work", type=Path, help="search folder (default runs/arch-SPACE)")
    args, extra = parser.parse_known_args()  # the rest goes to `neurojoule search`
    work = args.work or Path(f"runs/arch-{args.space}")
    plot = args.results.with_name(args.results.stem.removeprefix("results_") + ".png")
    seconds: dict[str, float] = {}
    argv = ["search", "--space", args.space, "--task", args.task, "--out", str(work)]
    argv += ["--plot", str(plot), "--json", *extra]
    if (work / "search.json").is_file():
        argv.append("--resume")
    result = json.loads(step("search", argv, work, seconds))
    front = [tested(entry, work, seconds) for entry in result["front"]]
    reference = {"name": result["reference"]["name"]}
    reference |= tested(result["reference"], work, seconds)
    cut = sum(1 for _ in work.glob("candidates/*/candidate.json") if _is_cut(_))
    results = {
        "space": args.space,
        "task": args.task,
        "model": result["model"],
        "front": front,
        "reference": reference,
        "dominating": [i for i, entry in enumerate(front) if dominates(entry, reference)],
        "best": result["best"],
        "budget": {
            "train_steps": result["context"]["training"]["steps"],
            "cut_at_step": result["context"]["training"]["steps"] // 2,
            "population": result["settings"]["population"],
            "generations": result["settings"]["generations"],
            "candidates_trained": len(list(work.glob("candidates/*/candidate.json"))),
            "candidates_cut": cut,
            "validation_samples": result["validation"]["samples"],
            "search_seconds": result["seconds"],
        },
        "proxy": result["proxy"],
        "fitness_rule": result["fitness_rule"],
        "seconds": seconds,
        "machine": machine_description(),
        "command": "python benchmarks/arch_search.py " + " ".join(sys.argv[1:]),
        "written": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    args.results.write_text(json.dumps(results, indent=2) + "\n")
    print(
        f"{result['model']} on {args.task}: {len(front)} front members; reference "
        f"{reference['name']} {reference['test_accuracy']:.2%} at {reference['energy_uj']:.4g} "
        f"µJ; dominated by front members {results['dominating']}; {args.results}"
    )


def _is_cut(record: Path) -> bool:
    return json.loads(record.read_text())["cut"]


if __name__ == "__main__":
    main()
