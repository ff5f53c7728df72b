"""neurojoule sdn train|eval: the surrogate dynamic network, trained for one LIF decay and
measured against the exact LIF."""

from __future__ import annotations

import argparse
import json

from neurojoule.cli.parsing import (
    Command,
    add_json,
    default_of,
    device,
    positive_float,
    positive_int,
)


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    from neurojoule.train.sdn import train_sdn

    def default(name: str):
        return default_of(train_sdn, name)

    parser.add_argument(
        "--decay", type=positive_float, required=True, help="the LIF's decay factor, e.g. 0.125"
    )
    parser.add_argument(
        "--out", help="output JSON (default: $NEUROJOULE_CACHE/sdn/sdn_decay_DECAY.json)"
    )
    parser.add_argument("--epochs", type=positive_int, default=default("epochs"), help="epochs")
    parser.add_argument(
        "--sequences", type=positive_int, default=default("sequences"), help="N(0,1) sequences"
    )
    parser.add_argument(
        "--length", type=positive_int, default=default("length"), help="steps per sequence"
    )
    parser.add_argument(
        "--batch-size", type=positive_int, default=default("batch_size"), help="batch size"
    )
    parser.add_argument(
        "--kernel-size",
        type=positive_int,
        default=default("kernel_size"),
        help="steps of input history the SDN sees (published: 8)",
    )
    parser.add_argument(
        "--channels",
        type=positive_int,
        default=default("channels"),
        help="hidden channels (published: 8)",
    )
    parser.add_argument(
        "--depth",
        type=positive_int,
        default=default("depth"),
        help="residual channel-mixing layers (published: 1; 3 suits decay 0.25, 0.5)",
    )
    parser.add_argument("--device", type=device, default=default("device"), help="cpu or cuda")
    parser.add_argument("--threads", type=positive_int, help="CPU threads (default: torch's)")
    parser.add_argument(
        "--max-minutes",
        type=positive_float,
        help="stop after the last epoch that fits (default: no limit)",
    )


def run_train(args: argparse.Namespace) -> int:
    import torch

    from neurojoule.data.cache import cache_dir
    from neurojoule.neuron.sdn import save_sdn
    from neurojoule.train.sdn import evaluate_sdn, format_sdn_training, train_sdn

    if args.threads:
        torch.set_num_threads(args.threads)
    net, metrics = train_sdn(
        args.decay,
        sequences=args.sequences,
        length=args.length,
        epochs=args.epochs,
        batch_size=args.batch_size,
        seed=args.seed,
        device=args.device,
        max_seconds=args.max_minutes * 60 if args.max_minutes else None,
        kernel_size=args.kernel_size,
        channels=args.channels,
        depth=args.depth,
    )
    metrics["eval"] = evaluate_sdn(net.cpu())
    out = args.out or cache_dir() / "sdn" / f"sdn_decay_{args.decay:g}.json"
    save_sdn(net, out, metrics)
    print(format_sdn_training(metrics, out))
    return 0


def add_eval_arguments(parser: argparse.ArgumentParser) -> None:
    from neurojoule.train.sdn import evaluate_sdn, evaluate_sdn_on_model

    parser.add_argument(
        "--decay",
        type=positive_float,
        help="a shipped SDN's decay factor: 0.125, 0.25, 0.5 (default: none; give --decay, "
        "--path or --checkpoint)",
    )
    parser.add_argument(
        "--path",
        help="an SDN file written by `neurojoule sdn train`, its decay checked against --decay "
        "(default: the shipped SDN for the decay)",
    )
    parser.add_argument(
        "--checkpoint",
        help="a trained model: agreement on the currents its neurons receive, with the shipped "
        "SDN or --path (default: none, N(0,1) currents)",
    )
    parser.add_argument(
        "--sequences",
        type=positive_int,
        help=f"N(0,1) sequences, >= 4 (default {default_of(evaluate_sdn, 'sequences')}); "
        "with --checkpoint: test samples (default "
        f"{default_of(evaluate_sdn_on_model, 'limit_samples')})",
    )
    add_json(parser)


def run_eval(args: argparse.Namespace) -> int:
    from neurojoule.neuron.sdn import load_sdn
    from neurojoule.train.sdn import (
        evaluate_sdn,
        evaluate_sdn_on_model,
        format_sdn_evaluation,
        format_sdn_model_evaluation,
    )

    if args.checkpoint:
        if args.decay is not None:
            raise ValueError("--decay does not go with --checkpoint: the model's neurons set it")
        sequences = args.sequences or default_of(evaluate_sdn_on_model, "limit_samples")
        result = evaluate_sdn_on_model(args.checkpoint, limit_samples=sequences, sdn_path=args.path)
        text = format_sdn_model_evaluation
    else:
        if args.path is None and args.decay is None:
            raise ValueError("give --decay for a shipped SDN, --path for a file or --checkpoint")
        net = load_sdn(decay=args.decay, path=args.path)
        sequences = args.sequences or default_of(evaluate_sdn, "sequences")
        result = evaluate_sdn(net, sequences=sequences, seed=args.seed)
        text = format_sdn_evaluation
    print(json.dumps(result, indent=2) if args.json else text(result))
    return 0


COMMAND = Command(
    "sdn",
    "the surrogate dynamic network: train and evaluate",
    subcommands=(
        Command(
            "train",
            "train an SDN for one LIF decay factor",
            run=run_train,
            add_arguments=add_train_arguments,
        ),
        Command(
            "eval",
            "spike agreement of an SDN with the exact LIF",
            run=run_eval,
            add_arguments=add_eval_arguments,
        ),
    ),
)
