"""neurojoule export CHECKPOINT --out FILE.nir: a trained model as a NIR graph."""

from __future__ import annotations

import argparse
import json

from neurojoule.cli.parsing import Command, add_json, default_of, positive_float


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from neurojoule.export import export_nir

    parser.add_argument("checkpoint", help="a .ckpt written by neurojoule train, or its run folder")
    parser.add_argument("--out", required=True, help="the NIR file to write (e.g. model.nir)")
    parser.add_argument(
        "--dt",
        type=positive_float,
        default=default_of(export_nir, "dt"),
        help="length of one time step in the graph's time unit (stored in its metadata)",
    )
    add_json(parser, "the summary")


def run(args: argparse.Namespace) -> int:
    from neurojoule.export import export_nir, format_summary, summarize, write_nir
    from neurojoule.train.checkpoints import load_checkpoint

    config, _, model = load_checkpoint(args.checkpoint)
    graph = export_nir(model, dt=args.dt, name=config.model)
    path = write_nir(graph, args.out)
    summary = summarize(graph)
    if args.json:
        print(json.dumps({"out": str(path), **summary}))
    else:
        print(format_summary(summary, str(path)))
    return 0


COMMAND = Command(
    "export",
    "write a checkpoint's network as a NIR graph (dense-snn, spiking MLP, SpikingSSM neurons)",
    run=run,
    add_arguments=add_arguments,
    seeded=False,
)
