"""neurojoule supernet train|extract: the weight-entangled supernet of a search space, trained
through the common trainer, and its subnets written as training checkpoints."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from neurojoule.cli.parsing import Command, add_run_folder, default_of, non_negative_int

SUPERNET_CONFIG = "{task}-supernet"  # the config a task's supernet trains with by default


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    from neurojoule.data.tasks import TASKS
    from neurojoule.search.space import space_names
    from neurojoule.train.config import SAMPLING_RULES

    parser.add_argument(
        "--space",
        metavar="NAME|FILE",
        help=f"the search space: {', '.join(space_names())} or a YAML file (default: the "
        "config's space)",
    )
    parser.add_argument(
        "--task", "--dataset", required=True, choices=TASKS, metavar="TASK", help="the task"
    )
    parser.add_argument(
        "--config",
        help="a config name (see `neurojoule configs`) or a YAML file (default: TASK-supernet "
        "where it exists, else the task's config)",
    )
    parser.add_argument(
        "--sampling",
        choices=SAMPLING_RULES,
        help="subnets per step: uniform, one drawn uniformly (the published rule); sandwich, "
        "the largest, the smallest and two uniform ones (default: the config's sampling)",
    )
    add_run_folder(parser, "optim.epochs=2", "runs/supernet-SPACE-SAMPLING-seedN")
    parser.add_argument(
        "--quiet", action="store_true", help="no progress bars (the result is still printed)"
    )


def run_train(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from neurojoule.cli.train import note_other_task
    from neurojoule.search.space import load_space
    from neurojoule.search.supernet import format_supernet_result, train_supernet
    from neurojoule.train.config import config_names, default_config, load_config

    supernet_config = SUPERNET_CONFIG.format(task=args.task)
    name = args.config or (
        supernet_config if supernet_config in config_names() else default_config(args.task)
    )
    fields = {"task": args.task, "seed": args.seed, "sampling": args.sampling, "space": args.space}
    config = load_config(name, list(args.set or []), **fields)
    if config.space is None:
        raise ValueError(f"config {name} names no space; give --space NAME|FILE")
    config = replace(config, model=load_space(config.space).model)  # the space's model
    note_other_task(name, config.task)
    out = args.out or f"runs/supernet-{Path(config.space).stem}-{config.sampling}-seed{args.seed}"
    result = train_supernet(config, out, resume=args.resume, progress=not args.quiet)
    print(format_supernet_result(config, result))
    return 0


def add_extract_arguments(parser: argparse.ArgumentParser) -> None:
    from neurojoule.search.subnets import extract_subnet

    parser.add_argument(
        "supernet_run",
        metavar="RUN",
        help="a supernet run folder (its best checkpoint) or checkpoint",
    )
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--subnet",
        metavar="JSON",
        help='the subnet as JSON text or a JSON file: its options, e.g. {"embed_dim": 64, '
        '"steps": 2, "depth": 1, "heads": [2], "mlp_ratio": [3.0], "v_threshold": [1.0], '
        '"tau": [2.0]}, or a genome of the space (default: none; give --subnet, --largest or '
        "--smallest)",
    )
    which.add_argument("--largest", action="store_true", help="the space's largest subnet")
    which.add_argument("--smallest", action="store_true", help="the space's smallest subnet")
    parser.add_argument("--out", required=True, metavar="CKPT", help="the checkpoint to write")
    parser.add_argument(
        "--calibration-batches",
        type=non_negative_int,
        default=default_of(extract_subnet, "calibration_batch_count"),
        help="training batches (of the run's batch size, drawn with --seed) that recompute the "
        "batch-norm statistics; 0 keeps the supernet's",
    )


def run_extract(args: argparse.Namespace) -> int:
    from neurojoule.search.subnets import extract_subnet, format_extraction

    if args.subnet is not None:
        subnet = _read_json(args.subnet)
    else:
        subnet = "largest" if args.largest else "smallest"
    result = extract_subnet(
        args.supernet_run,
        subnet,
        args.out,
        calibration_batch_count=args.calibration_batches,
        seed=args.seed,
    )
    print(format_extraction(result))
    return 0


def _read_json(text: str) -> object:
    """JSON text, or the contents of a JSON file of that name."""
    source = "--subnet"
    path = Path(text)
    try:
        if not text.lstrip().startswith("{") and path.is_file():
            source, text = str(path), path.read_text(encoding="utf-8")
    except (OSError, ValueError):  # a name too long to be a file: JSON text then
        pass
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"{source} is not valid JSON: {error}") from None


COMMAND = Command(
    "supernet",
    "the weight-entangled supernet of a search space: train it, extract subnets",
    subcommands=(
        Command(
            "train",
            "train the supernet of a search space (Lightning)",
            run=run_train,
            add_arguments=add_train_arguments,
        ),
        Command(
            "extract",
            "write a subnet of a trained supernet as a checkpoint for eval and train --init",
            run=run_extract,
            add_arguments=add_extract_arguments,
        ),
    ),
)
