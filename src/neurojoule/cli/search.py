"""neurojoule search: evolutionary search (the published evolution or NSGA-II) on accuracy
and energy, of a trained supernet (--supernet RUN; under torchrun the ranks share the work)
or of a space whose candidates are each trained for a short budget (--space SPACE --task T)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from neurojoule.cli.parsing import Command, add_json, device, non_negative_int, positive_int


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from neurojoule.data.tasks import TASKS
    from neurojoule.search.command import DEFAULT_TRAIN_STEPS
    from neurojoule.search.objectives import AEB_LAMBDA, OBJECTIVES, WEIGHT_KEYS
    from neurojoule.search.runner import ALGORITHMS, DEFAULT_BUDGETS
    from neurojoule.search.space import space_names
    from neurojoule.search.subnets import DEFAULT_CALIBRATION_BATCHES

    budgets = "; ".join(
        f"{name}: population {b.population}, {b.generations} generations, "
        f"{b.val_limit or 'all'} validation samples"
        + (f", {b.train_steps} training steps" if b.train_steps else "")
        for name, b in DEFAULT_BUDGETS.items()
    )
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument(
        "--supernet",
        metavar="RUN",
        help="a supernet run folder (its best checkpoint) or checkpoint "
        "(neurojoule supernet train); one of --supernet and --space is required (no default)",
    )
    what.add_argument(
        "--space",
        help=f"a space (a name: {', '.join(space_names())}; or a YAML file) whose candidates "
        "are trained from scratch, each for --train-steps steps (no default)",
    )
    parser.add_argument(
        "--task",
        choices=TASKS,
        metavar="TASK",
        help="--space: the task the candidates train on (required with --space; no default)",
    )
    parser.add_argument(
        "--config",
        help="--space: the base training config of the candidates (a name or a YAML file; "
        "default: the space's budget's, else the task's); its model options are the "
        "hand-designed reference",
    )
    parser.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="--space: override a field of the base config, e.g. --set lif_mode=bptt "
        "(repeatable; default: none)",
    )
    parser.add_argument(
        "--train-steps",
        type=positive_int,
        help="--space: optimizer steps of every candidate (default: the space's budget; "
        f"{DEFAULT_TRAIN_STEPS} for other spaces)",
    )
    parser.add_argument(
        "--proxy",
        action="store_true",
        help="--space: also score every candidate at initialisation with SNASNet's Hamming "
        "proxy and report its rank correlation with the trained accuracy",
    )
    parser.add_argument(
        "--no-cut",
        action="store_true",
        help="--space: train every candidate for its whole budget (default: cut at half the "
        "budget a candidate below the median of earlier generations there)",
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
        default=None,
        help="--supernet: training batches that recompute each subnet's batch-norm statistics "
        f"(drawn with --seed); 0 keeps the supernet's (default {DEFAULT_CALIBRATION_BATCHES})",
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
        "--out", help="search folder (default runs/search-ALGORITHM-SUPERNET-or-SPACE-seedN)"
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
    from neurojoule.search.evaluator import close_distributed, init_distributed
    from neurojoule.search.front import format_result, plot_front

    request = _request(args)
    device = init_distributed() or args.device
    try:
        result = _search(args, request, device)
        if _rank() == 0:
            if args.plot:
                plot_front(result, args.plot)
            if args.json:
                print(json.dumps(result, indent=2))
            else:
                print(format_result(result))
                print(f"search folder: {request.out} (front.json, front.png, search.json)")
    finally:
        close_distributed()
    sys.stdout.flush()
    return 0


def _request(args: argparse.Namespace):
    from neurojoule.search.command import DEFAULT, SearchRequest
    from neurojoule.search.objectives import check_objectives, parse_weights

    searched = Path((args.supernet or args.space).rstrip("/")).stem
    return SearchRequest(
        algorithm=args.algorithm,
        population=args.population or DEFAULT,
        generations=args.generations or DEFAULT,
        val_limit=DEFAULT if args.val_limit is None else (args.val_limit or None),
        seed=args.seed,
        objectives=check_objectives(name.strip() for name in args.objectives.split(",")),
        lam=args.lam,
        weights=None if args.weights is None else parse_weights(args.weights),
        evolution={"top_k": args.top_k, "mutations": args.mutations, "crossovers": args.crossovers},
        energy_table=args.energy_table,
        out=args.out or f"runs/search-{args.algorithm}-{searched}-seed{args.seed}",
        resume=args.resume,
        progress=not args.quiet,
    )


def _search(args: argparse.Namespace, request, device) -> dict:
    from neurojoule.search.command import search_by_training, search_supernet

    if args.supernet is not None:
        names = ("task", "config", "set", "train_steps", "no_cut", "proxy")
        unused = [f"--{name.replace('_', '-')}" for name in names if getattr(args, name)]
        if unused:
            raise ValueError(f"{', '.join(unused)} go with --space, not --supernet")
        from neurojoule.search.subnets import DEFAULT_CALIBRATION_BATCHES

        calibration = args.calibration_batches
        calibration = DEFAULT_CALIBRATION_BATCHES if calibration is None else calibration
        return search_supernet(args.supernet, request, args.batch_size, calibration, device)
    from neurojoule.search.runner import default_budget
    from neurojoule.search.space import load_space
    from neurojoule.train.config import default_config, load_config

    if args.task is None:
        raise ValueError("--space needs --task: the task its candidates train on")
    if args.batch_size or args.device or args.calibration_batches is not None:
        raise ValueError("--batch-size, --device and --calibration-batches go with --supernet")
    space = load_space(args.space)
    name = args.config or default_budget(space).config or default_config(args.task)
    config = load_config(name, list(args.set or []), model=space.model, task=args.task)
    reference = Path(name).stem
    return search_by_training(
        space, config, request, args.train_steps, not args.no_cut, args.proxy, reference
    )


def _rank() -> int:
    import torch.distributed as dist

    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


COMMAND = Command(
    "search",
    "search for accurate, energy-efficient networks (evolution or NSGA-II): the subnets of a "
    "trained supernet, or a space whose candidates are trained briefly",
    run=run,
    add_arguments=add_arguments,
)
