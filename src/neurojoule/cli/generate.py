"""neurojoule generate CHECKPOINT --prompt TEXT: continue a text with a trained language model,
run as a recurrence (one step of fixed cost per token), with its speed and energy per token.

The text goes to stdout; the progress bar and the summary line (tokens per second, energy per
generated token) to stderr, so `neurojoule generate ... > out.txt` keeps only the text."""

from __future__ import annotations

import argparse
import json
import sys

from neurojoule.cli.parsing import Command, add_json, default_of, positive_float, positive_int


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from neurojoule.energy import ENERGY_TABLES
    from neurojoule.train.generate import generate_text

    parser.add_argument(
        "checkpoint",
        metavar="CHECKPOINT_OR_RUN_FOLDER",
        help="a language model's .ckpt written by neurojoule train (spiking-ssm-lm, s4d-lm), or "
        "its run folder",
    )
    parser.add_argument(
        "--prompt",
        required=True,
        metavar="TEXT",
        help="the text to continue, tokenised with the run's vocabulary (unknown words become "
        "<unk>)",
    )
    parser.add_argument(
        "--max-tokens",
        type=positive_int,
        default=default_of(generate_text, "max_tokens"),
        help="how many tokens to generate",
    )
    parser.add_argument(
        "--temperature",
        type=positive_float,
        default=default_of(generate_text, "temperature"),
        help="divides the scores before sampling: below 1 sharper, above 1 flatter (> 0; "
        "for greedy decoding use --top-k 1)",
    )
    parser.add_argument(
        "--top-k",
        type=positive_int,
        help="sample among the k most likely tokens only (default: all; 1 is greedy)",
    )
    parser.add_argument(
        "--energy-table",
        default=default_of(generate_text, "energy_table"),
        help=f"energy per op: a table name ({', '.join(ENERGY_TABLES)}) or 'mac=PJ,ac=PJ'",
    )
    add_json(parser, "the text, tokens, tokens_per_s and energy_per_token_uj")


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from neurojoule.train.generate import generate_text

    bars = []  # made at the first token: no bar for a checkpoint that fails to load

    def tick(count: int) -> None:
        if not bars:
            bars.append(tqdm(total=args.max_tokens, desc="generate", unit="tok", file=sys.stderr))
        bars[0].update(1)

    try:
        result = generate_text(
            args.checkpoint,
            args.prompt,
            max_tokens=args.max_tokens,
            temperature=args.temperature,
            top_k=args.top_k,
            seed=args.seed,
            energy_table=args.energy_table,
            on_token=tick,
        )
    finally:
        for bar in bars:
            bar.close()
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print(result.full_text)
        print(result.summary(), file=sys.stderr)
    return 0


COMMAND = Command(
    "generate",
    "continue a text with a trained language model, streamed token by token; its speed and "
    "energy per token",
    run=run,
    add_arguments=add_arguments,
)
