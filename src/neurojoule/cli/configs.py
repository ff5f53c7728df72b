"""neurojoule configs: the shipped training configs, with the task and model each was written
for."""

from __future__ import annotations

import argparse
import json

from neurojoule.cli.parsing import Command, add_json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_json(parser, "a list of {name, task, model, description}")


def run(args: argparse.Namespace) -> int:
    from neurojoule.train.config import describe_configs, format_config_table

    rows = describe_configs()
    print(json.dumps(rows, indent=2) if args.json else format_config_table(rows))
    return 0


COMMAND = Command(
    "configs",
    "list the training configs: task, model and what each is",
    run=run,
    add_arguments=add_arguments,
    seeded=False,
)
