"""What running a subnet through the supernet costs against the same network extracted.

`python benchmarks/supernet_overhead.py [--batch 64] [--repeats 15]` builds the supernet of
the CPU space `spikformer-fmnist-cpu` and, for its smallest and largest subnets, the
hand-designed `spikformer` and four drawn ones, times one inference forward (eval mode, no
gradients) of a batch of Fashion-MNIST-sized images through the supernet (the sliced views,
functional_call) and through the extracted standalone network, the two in turn so that a load
on the machine slows both alike. Writes benchmarks/results_supernet_overhead.json: per subnet
the median seconds of each and their ratio, and `ratio`, the geometric mean of the ratios.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
import time
from pathlib import Path

import torch

from neurojoule.bench import machine_description
from neurojoule.models.elastic import ElasticModel
from neurojoule.search.space import load_space

SPACE = "spikformer-fmnist-cpu"
HAND_DESIGNED = {"embed_dim": 128, "steps": 4, "depth": 2, "heads": (4, 4)}
HAND_DESIGNED |= {"mlp_ratio": (4.0, 4.0), "v_threshold": (1.0, 1.0), "tau": (2.0, 2.0)}
RESULTS = Path(__file__).parent / "results_supernet_overhead.json"


def subnets() -> list[tuple[str, dict]]:
    space = load_space(SPACE)
    rng = random.Random(0)
    drawn = [(f"drawn {i}", space.decode(space.sample(rng))) for i in range(4)]
    named = [("smallest", space.extreme(largest=False)), ("largest", space.extreme(largest=True))]
    return [*named, ("hand-designed spikformer", HAND_DESIGNED), *drawn]


def _seconds(run, images) -> float:
    start = time.perf_counter()
    run(images)
    return time.perf_counter() - start


@torch.no_grad()
def measure(batch: int, repeats: int) -> dict:
    torch.manual_seed(0)
    space = load_space(SPACE)
    elastic = ElasticModel(space.model, space.supernet_options()).eval()
    images = torch.rand(batch, 1, 28, 28)
    rows = []
    for name, subnet in subnets():
        standalone = elastic.extract(subnet).eval()
        through = lambda x, subnet=subnet: elastic(x, subnet)  # noqa: E731
        for _ in range(3):  # warm-up: kernels, allocator, the supernet's cached plan
            through(images), standalone(images)
        pairs = [(_seconds(through, images), _seconds(standalone, images)) for _ in range(repeats)]
        supernet_s = statistics.median(p[0] for p in pairs)
        standalone_s = statistics.median(p[1] for p in pairs)
        rows.append(
            {
                "subnet": name,
                "options": {k: v for k, v in subnet.items()},
                "supernet_s": supernet_s,
                "standalone_s": standalone_s,
                "ratio": supernet_s / standalone_s,
            }
        )
        print(
            f"{name:<26} supernet {supernet_s * 1e3:8.1f} ms  standalone "
            f"{standalone_s * 1e3:8.1f} ms  ratio {rows[-1]['ratio']:.3f}",
            file=sys.stderr,
        )
    ratio = math.exp(statistics.fmean(math.log(r["ratio"]) for r in rows))
    return {
        "ratio": ratio,
        "target": 1.1,
        "batch": batch,
        "repeats": repeats,
        "machine": machine_description(),
        "subnets": rows,
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    result = measure(args.batch, args.repeats)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"geometric mean ratio {result['ratio']:.3f} (target <= 1.1); {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
