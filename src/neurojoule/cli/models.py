"""neurojoule models: the registered models with their size and input shape."""

from __future__ import annotations

import argparse
import json

from neurojoule.cli.parsing import Command, add_json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_json(parser, "a list of {name, params, input_shape, description}")


def run(args: argparse.Namespace) -> int:
    from neurojoule.models.registry import describe_models, format_model_table

    rows = describe_models()
    print(json.dumps(rows, indent=2) if args.json else format_model_table(rows))
    return 0


COMMAND = Command(
    "models",
    "list the registered models: parameters and input shape",
    run=run,
    add_arguments=add_arguments,
    seeded=False,
)
