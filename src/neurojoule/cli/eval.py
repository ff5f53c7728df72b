"""neurojoule eval CHECKPOINT: accuracy (perplexity for a language model), spike rates and
energy of a trained model, run as deployed."""

from __future__ import annotations

import argparse
import json

from neurojoule.cli.parsing import Command, add_json, default_of, positive_int


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from neurojoule.energy import ENERGY_TABLES
    from neurojoule.train.config import EVAL_LIF_MODES
    from neurojoule.train.evaluation import SPLITS, evaluate

    parser.add_argument("checkpoint", help="a .ckpt written by neurojoule train, or its run folder")
    parser.add_argument(
        "--split", choices=SPLITS, default=default_of(evaluate, "split"), help="the split"
    )
    parser.add_argument(
        "--lif-mode",
        choices=EVAL_LIF_MODES,
        default=default_of(evaluate, "lif_mode"),
        help="the LIF the spiking layers run (bptt and sltt: the exact LIF)",
    )
    parser.add_argument(
        "--energy-table",
        default=default_of(evaluate, "energy_table"),
        help=f"energy per op: a table name ({', '.join(ENERGY_TABLES)}) or 'mac=PJ,ac=PJ'",
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument(
        "--limit",
        type=positive_int,
        help="evaluate a subset, drawn with the run's seed (default: the config's "
        "limit_eval_samples)",
    )
    size.add_argument(
        "--whole-split",
        action="store_true",
        help="evaluate every sample of the split (default: the config's limit_eval_samples)",
    )
    add_json(parser)


def run(args: argparse.Namespace) -> int:
    from neurojoule.train.evaluation import evaluate, format_evaluation
    from neurojoule.train.language_model import evaluate_lm, format_lm_evaluation, is_lm_checkpoint

    language_model = is_lm_checkpoint(args.checkpoint)
    result = (evaluate_lm if language_model else evaluate)(
        args.checkpoint,
        split=args.split,
        lif_mode=args.lif_mode,
        energy_table=args.energy_table,
        limit_samples=args.limit,
        whole_split=args.whole_split,
        progress=True,  # on stderr: --json output stays clean
    )
    if args.json:
        print(json.dumps({**result, "energy": result["energy"].to_dict()}, indent=2))
    else:
        print((format_lm_evaluation if language_model else format_evaluation)(result))
    return 0


COMMAND = Command(
    "eval",
    "accuracy (perplexity for a language model), spike rates and energy of a checkpoint",
    run=run,
    add_arguments=add_arguments,
    seeded=False,  # the data are the checkpoint's: its config's seed picks any subset
)
