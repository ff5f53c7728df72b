"""neurojoule search --supernet RUN: evolutionary search of a trained supernet on accuracy
and energy (the published evolution or NSGA-II); under torchrun the ranks share the work."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from neurojoule.cli.parsing import Command, add_json, device, non_negative_int, positive_int


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from neurojoule.search.objectives import AEB_LAMBDA, OBJECTIVES, WEIGHT_KEYS
    from neurojoule.search.runner import ALGORITHMS, DEFAULT_BUDGETS
    from neurojoule.search.subnets import DEFAULT_CALIBRATION_BATCHES

    budgets = "; ".join(
        f"{name}: population {b.population}, {b.generations} generations, "
        f"{b.val_limit or 'all'} validation samples"
        for name, b in DEFAULT_BUDGETS.items()
    )
    parser.add_argument(
        "--supernet",
        required=True,
        metavar="RUN",
        help="a supernet run folder (its best checkpoint) or checkpoint "
        "(neurojoule supernet train)",
    )
    parser.add_argument(
        "--algorithm",
        choices=ALGORITHMS,
        default=ALGORITHMS[0],
        help="evolution: the published Auto-Spikformer evolution ranked by the fitness; "
        "nsga2: pymoo's NSGA-II on the objectives",
    )
    parser.add_argument(
        "--objectives",
        default="error,energy",
        help=f"the minimised objectives of the front (and of NSGA-II), comma-separated among "
        f"{', '.join(OBJECTIVES)}",
    )
    parser.add_argument(
        "--population",
        type=positive_int,
        help=f"subnets per generation (default: the space's budget; {budgets}; other spaces: "
        "the published 50 and 20)",
    )
    parser.add_argument(
        "--generations", type=positive_int, help="generations (default: the space's budget)"
    )
    parser.add_argument(
        "--val-limit",
        type=non_negative_int,
        help="validation samples, drawn with the supernet run's seed; 0: the whole split "
        "(default: the space's budget)",
    )
    parser.add_argument(
        "--lambda",
        dest="lam",
        type=float,
        default=AEB_LAMBDA,
        help="the exponent of the AEB fitness, acc x (E / E_largest)^lambda",
    )
    parser.add_argument(
        "--weights",
        metavar="NAME=W,...",
        help=f"rank by a weighting of the objectives normalised by the largest subnet instead "
        f"of the AEB fitness: names among {', '.join(WEIGHT_KEYS)} (default: the AEB fitness)",
    )
    for name, what in (
        ("top-k", "parents: the fittest so far"),
        ("mutations", "mutations per generation"),
        ("crossovers", "uniform crossovers per generation"),
    ):
        parser.add_argument(
            f"--{name}",
            type=non_negative_int,
            help=f"evolution: {what} (default: the published share of the population: "
            "10, 25 and 25 of 50)",
        )
    parser.add_argument(
        "--batch-size", type=positive_int, help="evaluation batch size (default: the run's)"
    )
    parser.add_argument(
        "--calibration-batches",
        type=non_negative_int,
        default=DEFAULT_CALIBRATION_BATCHES,
        help="training batches that recompute each subnet's batch-norm statistics (drawn "
        "with --seed); 0 keeps the supernet's",
    )
    parser.add_argument(
        "--energy-table", default="45nm", help="energy per op: a table name or 'mac=PJ,ac=PJ'"
    )
    parser.add_argument(
        "--device",
        type=device,
        help="cpu, cuda or cuda:N (default: the CPU; under torchrun each rank takes the GPU "
        "of its local rank where CUDA is)",
    )
    parser.add_argument(
        "--out", help="search folder (default runs/search-ALGORITHM-SUPERNET-seedN)"
    )
    parser.add_argument(
        "--resume", action="store_true", help="continue the search saved in OUT/search.json"
    )
    parser.add_argument(
        "--plot", metavar="PNG", help="also write the front's plot here (default: OUT/front.png)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    add_json(parser, "the result (front, fittest subnet, reference)")


def run(args: argparse.Namespace) -> int:
    from neurojoule.search.command import DEFAULT, search_supernet
    from neurojoule.search.evaluator import close_distributed, init_distributed
    from neurojoule.search.front import format_result, plot_front
    from neurojoule.search.objectives import check_objectives, parse_weights

    objectives = check_objectives(name.strip() for name in args.objectives.split(","))
    weights = None if args.weights is None else parse_weights(args.weights)
    evolution = {"top_k": args.top_k, "mutations": args.mutations, "crossovers": args.crossovers}
    out = args.out or (
        f"runs/search-{args.algorithm}-{Path(args.supernet.rstrip('/')).stem}-seed{args.seed}"
    )
    val_limit = DEFAULT if args.val_limit is None else (args.val_limit or None)
    device = init_distributed() or args.device
    try:
        result = search_supernet(
            args.supernet,
            algorithm=args.algorithm,
            population=args.population or DEFAULT,
            generations=args.generations or DEFAULT,
            val_limit=val_limit,
            seed=args.seed,
            objectives=objectives,
            lam=args.lam,
            weights=weights,
            evolution=evolution,
            batch_size=args.batch_size,
            calibration_batch_count=args.calibration_batches,
            energy_table=args.energy_table,
            out=out,
            resume=args.resume,
            progress=not args.quiet,
            device=device,
        )
        if _rank() == 0:
            if args.plot:
                plot_front(result, args.plot)
            if args.json:
                print(json.dumps(result, indent=2))
            else:
                print(format_result(result))
                print(f"search folder: {out} (front.json, front.png, search.json)")
    finally:
        close_distributed()
    sys.stdout.flush()
    return 0


def _rank() -> int:
    import torch.distributed as dist

    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


COMMAND = Command(
    "search",
    "search a trained supernet for accurate, energy-efficient subnets (evolution or NSGA-II)",
    run=run,
    add_arguments=add_arguments,
)
