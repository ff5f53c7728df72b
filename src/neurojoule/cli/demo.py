"""neurojoule demo: train a small model and print its accuracy and energy report."""

from __future__ import annotations

import argparse
import json

from neurojoule.cli.parsing import Command, add_json, default_of, positive_int


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from neurojoule.energy import ENERGY_TABLES
    from neurojoule.train.demo import DEMO_EPOCHS, run_demo

    parser.add_argument(
        "--task", choices=list(DEMO_EPOCHS), default=default_of(run_demo, "task"), help="the task"
    )
    epochs = ", ".join(f"{count} for {task}" for task, count in DEMO_EPOCHS.items())
    parser.add_argument("--epochs", type=positive_int, help=f"epochs (default: {epochs})")
    parser.add_argument("--threads", type=positive_int, help="torch threads (default: torch's)")
    parser.add_argument(
        "--energy-table",
        default=default_of(run_demo, "energy_table"),
        help=f"energy per op: a table name ({', '.join(ENERGY_TABLES)}) or 'mac=PJ,ac=PJ'",
    )
    add_json(parser)


def run(args: argparse.Namespace) -> int:
    import torch

    from neurojoule.train.demo import run_demo

    if args.threads:
        torch.set_num_threads(args.threads)
    result = run_demo(
        args.task,
        seed=args.seed,
        epochs=args.epochs,
        progress=not args.json,
        energy_table=args.energy_table,
    )
    print(json.dumps(result.to_dict(), indent=2) if args.json else result.format())
    return 0


COMMAND = Command(
    "demo",
    "train SpikingSSM on a small ListOps set (or a LIF net on digits), report accuracy+energy",
    run=run,
    add_arguments=add_arguments,
)
