"""Does the supernet rank subnets as training them alone would?

`python benchmarks/supernet_rank.py standalone [--out runs/supernet-rank]` trains SUBNETS
(members of the CPU space `spikformer-fmnist-cpu`, drawn with a fixed seed, plus its smallest
and largest) as standalone Spikformers, each at the same budget (BUDGET: the same Fashion-MNIST
subset, epochs and schedule), one run folder each; a finished run is not trained again and an
unfinished one resumes. Their test accuracy (the best checkpoint on the same seeded 2000-image
test subset) is the reference ranking. `python benchmarks/supernet_rank.py rank SUPERNET_RUN
[SUPERNET_RUN ...]` evaluates each subnet inherited from each supernet run (extracted, batch
norms recalibrated on training batches) on the same test subset, and writes the Kendall rank
correlation per sampling rule to benchmarks/results_supernet_rank.json.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

import torch

from neurojoule.search.space import load_space
from neurojoule.train import evaluate, load_config, train

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


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("stage", choices=["standalone"])
    parser.add_argument("--out", type=Path, default=Path("runs/supernet-rank"))
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    train_standalone(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
