"""Does the supernet rank subnets as training them alone would?

`python benchmarks/supernet_rank.py standalone [--out runs/supernet-rank]` trains SUBNETS
(members of the CPU space `spikformer-fmnist-cpu`, drawn with a fixed seed, plus its smallest
and largest) as standalone Spikformers, each at the same budget (BUDGET: the same Fashion-MNIST
subset, epochs and schedule), one run folder each; a finished run is not trained again and an
unfinished one resumes. Their test accuracy (the best checkpoint on the same seeded 2000-image
test subset) is the reference ranking. `python benchmarks/supernet_rank.py rank SUPERNET_RUN
[SUPERNET_RUN ...]` evaluates each subnet inherited from each supernet run (extracted, batch
norms recalibrated on training batches) on the same test subset, and writes the Kendall rank
correlation per sampling rule to benchmarks/results_supernet_rank.json, with that of a
training-free proxy (SNASNet's Hamming score of each subnet at initialisation).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
from pathlib import Path

import torch
from scipy.stats import kendalltau

from neurojoule.models import build_model
from neurojoule.search.proxy import hamming_score
from neurojoule.search.space import load_space
from neurojoule.search.subnets import extract_subnet
from neurojoule.train import evaluate, load_config, train
from neurojoule.train.splits import make_splits

RESULTS = Path(__file__).parent / "results_supernet_rank.json"

SPACE = "spikformer-fmnist-cpu"
SUBNETS = 8  # drawn, the smallest and the largest among them
# the standalone budget: the fashion-mnist config on a seeded 10000-image training subset
BUDGET = ["limit_train_samples=10000", "limit_eval_samples=2000", "optim.epochs=3"]


def subnets() -> list[dict]:
    space = load_space(SPACE)
    rng = random.Random(15)
    drawn = [space.decode(space.sample(rng)) for _ in range(SUBNETS - 2)]
    return [space.extreme(largest=False), *drawn, space.extreme(largest=True)]


def _options(subnet: dict) -> str:
    return json.dumps({k: list(v) if isinstance(v, tuple) else v for k, v in subnet.items()})


def train_standalone(out: Path) -> list[dict]:
    rows = []
    for index, subnet in enumerate(subnets()):
        run = out / f"standalone-{index}"
        done = (run / "timing.json").is_file()
        if not done:
            overrides = [*BUDGET, f"model_options={_options(subnet)}"]
            config = load_config("fashion-mnist", overrides, model="spikformer")
            resume = (run / "checkpoints" / "last.ckpt").is_file()
            print(f"standalone {index + 1}/{len(subnets())}: {subnet}", file=sys.stderr)
            train(config, run, resume=resume, progress=False)
        result = evaluate(run)
        seconds = json.loads((run / "timing.json").read_text())["train_seconds"]
        rows.append(
            {
                "subnet": subnet,
                "run": str(run),
                "test_accuracy": result["accuracy"],
                "train_seconds": seconds,
                "evaluated": result["evaluated"],
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    return rows


def inherited_accuracy(supernet_run: Path, out: Path) -> list[float]:
    """Each subnet's test accuracy inherited from a supernet run: extracted, its batch norms
    recalibrated on 8 training batches, tested on the standalone runs' test subset (the same
    seeded 2000 images: both configs draw it with seed 0)."""
    accuracies = []
    for index, subnet in enumerate(subnets()):
        checkpoint = out / "inherited" / supernet_run.name / f"subnet-{index}.ckpt"
        if not checkpoint.is_file():
            extract_subnet(supernet_run, subnet, checkpoint)
        accuracies.append(evaluate(checkpoint)["accuracy"])
    return accuracies


def proxy_scores(seeds: int = 3, batch: int = 64) -> list[float]:
    """Each subnet's SNASNet score at initialisation (search.proxy), the mean over `seeds`
    initialisations, on the first `batch` images of the standalone runs' training subset."""
    config = load_config("fashion-mnist", BUDGET, model="spikformer")
    train_set = make_splits(config)[0]
    images = torch.stack([train_set[i][0] for i in range(batch)])
    scores = []
    for subnet in subnets():
        values = []
        for seed in range(seeds):
            torch.manual_seed(seed)
            values.append(hamming_score(build_model("spikformer", **subnet), images))
        scores.append(sum(values) / seeds)
    return scores


def rank(supernet_runs: list[Path], out: Path) -> dict:
    standalone = train_standalone(out)  # finished: evaluated only
    reference = [row["test_accuracy"] for row in standalone]
    rules = {}
    for run in supernet_runs:
        config = json.loads(json.dumps(load_config(run / "config.yaml").to_dict()))
        inherited = inherited_accuracy(run, out)
        tau, p_value = kendalltau(reference, inherited)
        rules[config["sampling"]] = {
            "kendall_tau": tau,
            "p_value": p_value,
            "supernet_run": str(run),
            "supernet_config": config,
            "inherited_test_accuracy": inherited,
        }
        print(f"{config['sampling']}: Kendall tau {tau:.3f} (p = {p_value:.3f})", file=sys.stderr)
        for row, accuracy in zip(standalone, inherited, strict=True):
            row.setdefault("inherited_test_accuracy", {})[config["sampling"]] = accuracy
    scores = proxy_scores()
    tau, p_value = kendalltau(reference, scores)
    proxy = {"name": "SNASNet Hamming score at initialisation", "kendall_tau": tau}
    # -inf (two inputs with identical codes in every layer) ranks lowest; JSON has no -inf
    proxy |= {"p_value": p_value, "scores": [x if math.isfinite(x) else None for x in scores]}
    print(f"training-free proxy: Kendall tau {tau:.3f} (p = {p_value:.3f})", file=sys.stderr)
    return {
        "rules": rules,
        "proxy": proxy,
        "subnets": standalone,
        "standalone_budget": BUDGET,
        "space": SPACE,
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("stage", choices=["standalone", "rank"])
    parser.add_argument("supernets", nargs="*", type=Path, help="supernet run folders (rank)")
    parser.add_argument("--out", type=Path, default=Path("runs/supernet-rank"))
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.stage == "standalone":
        train_standalone(args.out)
        return 0
    if not args.supernets:
        parser.error("rank needs at least one supernet run folder")
    result = rank(args.supernets, args.out)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {RESULTS}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
