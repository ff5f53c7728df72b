"""neurojoule bench neuron|sdn|memory|accuracy: the benchmarks of docs/benchmarks.md, printed
as a table (or JSON rows) and optionally plotted. Their defaults are the benchmark modules'."""

from __future__ import annotations

import argparse
import sys

from neurojoule.cli.parsing import Command, add_json, default_of, device, positive_int

# the thread count the published CPU numbers were measured with (the reference machine's cores)
THREADS = 2


def _add_lengths(parser: argparse.ArgumentParser, run) -> None:
    parser.add_argument(
        "--lengths",
        type=positive_int,
        nargs="+",
        default=list(default_of(run, "lengths")),
        help="sequence lengths L",
    )


def _add_threads(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threads", type=positive_int, default=THREADS, help="CPU threads")


def _add_plot(parser: argparse.ArgumentParser, what: str = "the rows against L") -> None:
    parser.add_argument("--plot", metavar="PNG", help=f"also draw {what} as a PNG (default: no)")


def _print_rows(args, rows: list[dict], format_table, **table_options) -> int:
    """A benchmark's rows as JSON (--json) or as its table, and as a PNG plot with --plot."""
    import json

    print(json.dumps(rows, indent=2) if args.json else format_table(rows, **table_options))
    if args.plot:
        from neurojoule.bench.plots import SERIES, plot_rows

        memory = args.bench == "memory"
        plot_rows(
            rows,
            SERIES[args.bench],
            args.plot,
            f"neurojoule bench {args.bench}: {table_options.get('machine', '')}"[:110],
            ylabel="MiB" if memory else "seconds (forward + backward)",
            log_y=not memory,
        )
        print(f"plot written to {args.plot}", file=sys.stderr)
    return 0


def _device_description(name: str) -> str:
    import torch

    from neurojoule.bench import machine_description

    if name.startswith("cuda"):
        return f"{torch.cuda.get_device_name(torch.device(name))}, torch {torch.__version__}"
    return machine_description()


# ---- neuron ------------------------------------------------------------------------------


def add_neuron_arguments(parser: argparse.ArgumentParser) -> None:
    from neurojoule.bench.neuron import run

    _add_lengths(parser, run)
    parser.add_argument(
        "--channels", type=positive_int, default=default_of(run, "channels"), help="channels"
    )
    parser.add_argument(
        "--repeats",
        type=positive_int,
        default=default_of(run, "repeats"),
        help="timed runs (their median counts)",
    )
    parser.add_argument(
        "--snntorch-max-length",
        type=positive_int,
        default=default_of(run, "snntorch_max_length"),
        help="skip snnTorch above this L: it is far slower",
    )
    parser.add_argument("--device", type=device, default=default_of(run, "device"), help="device")
    parser.add_argument(
        "--busy",
        action="store_true",
        help="time everything beside a competing CPU-bound process (a Python busy loop), as "
        "on a machine in use by someone else",
    )
    _add_threads(parser)
    add_json(parser, "one row per L")
    _add_plot(parser)


def run_neuron(args: argparse.Namespace) -> int:
    import torch

    from neurojoule.bench.neuron import format_table, run

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rows = run(
        lengths=tuple(args.lengths),
        channels=args.channels,
        repeats=args.repeats,
        snntorch_max_length=args.snntorch_max_length,
        seed=args.seed,
        progress=not args.json,
        device=args.device,
        busy=args.busy,
    )
    machine = _device_description(args.device) + (", beside a busy loop" if args.busy else "")
    return _print_rows(args, rows, format_table, channels=args.channels, machine=machine)


# ---- sdn ---------------------------------------------------------------------------------


def add_sdn_arguments(parser: argparse.ArgumentParser) -> None:
    from neurojoule.bench.sdn import run

    _add_lengths(parser, run)
    parser.add_argument(
        "--batch", type=positive_int, default=default_of(run, "batch"), help="batch"
    )
    parser.add_argument(
        "--channels", type=positive_int, default=default_of(run, "channels"), help="channels"
    )
    parser.add_argument(
        "--repeats",
        type=positive_int,
        default=default_of(run, "repeats"),
        help="timed runs (their median counts)",
    )
    parser.add_argument(
        "--bptt-max-length",
        type=positive_int,
        default=default_of(run, "bptt_max_length"),
        help="skip the step-by-step methods above this L",
    )
    parser.add_argument("--device", type=device, default=default_of(run, "device"), help="device")
    _add_threads(parser)
    add_json(parser, "one row per L")
    _add_plot(parser)


def run_sdn(args: argparse.Namespace) -> int:
    import torch

    from neurojoule.bench.sdn import format_table, run

    torch.set_num_threads(args.threads)
    rows = run(
        lengths=tuple(args.lengths),
        batch=args.batch,
        channels=args.channels,
        repeats=args.repeats,
        bptt_max_length=args.bptt_max_length,
        device=args.device,
        seed=args.seed,
        progress=not args.json,
    )
    return _print_rows(args, rows, format_table, machine=_device_description(args.device))


# ---- memory ------------------------------------------------------------------------------


def add_memory_arguments(parser: argparse.ArgumentParser) -> None:
    from neurojoule.bench.memory import run
    from neurojoule.train.config import EVAL_LIF_MODES

    _add_lengths(parser, run)
    parser.add_argument(
        "--batch", type=positive_int, default=default_of(run, "batch"), help="batch"
    )
    parser.add_argument(
        "--d-model", type=positive_int, default=default_of(run, "d_model"), help="channels"
    )
    parser.add_argument(
        "--layers", type=positive_int, default=default_of(run, "n_layers"), help="layers"
    )
    parser.add_argument(
        "--lif-mode",
        choices=EVAL_LIF_MODES,
        default=default_of(run, "lif_mode"),
        help="the spiking layers' mode",
    )
    parser.add_argument("--device", type=device, default=default_of(run, "device"), help="device")
    add_json(parser, "one row per L")
    _add_plot(parser)


def run_memory(args: argparse.Namespace) -> int:
    from neurojoule.bench.memory import format_table, run

    rows = run(
        lengths=tuple(args.lengths),
        batch=args.batch,
        d_model=args.d_model,
        n_layers=args.layers,
        lif_mode=args.lif_mode,
        device=args.device,
        progress=not args.json,
    )
    return _print_rows(args, rows, format_table, machine=_device_description(args.device))


# ---- accuracy ----------------------------------------------------------------------------


def add_accuracy_arguments(parser: argparse.ArgumentParser) -> None:
    from neurojoule.bench.accuracy import run
    from neurojoule.train.config import LIF_MODES

    parser.add_argument(
        "--configs",
        nargs="+",
        default=list(default_of(run, "configs")),
        help="training configs (see `neurojoule configs`)",
    )
    parser.add_argument(
        "--repeats",
        type=positive_int,
        default=1,
        help="train each model with seeds SEED .. SEED+REPEATS-1",
    )
    parser.add_argument("--out", default=str(default_of(run, "out")), help="folder for the runs")
    parser.add_argument(
        "--lif-mode",
        choices=LIF_MODES,
        default=default_of(run, "lif_mode"),
        help="how SpikingSSM trains (auto: the fastest on the device); its runs get their own "
        "folders, S4D runs serve every mode",
    )
    _add_threads(parser)
    add_json(parser, "rows (one per config, model and seed) and a summary per config")
    _add_plot(parser, "the accuracies of both models")


def run_accuracy(args: argparse.Namespace) -> int:
    import json

    import torch

    from neurojoule.bench import machine_description
    from neurojoule.bench.accuracy import format_table, run, summarize
    from neurojoule.bench.plots import plot_accuracy

    torch.set_num_threads(args.threads)
    rows = run(
        configs=args.configs,
        out=args.out,
        seeds=range(args.seed, args.seed + args.repeats),
        progress=not args.json,  # Lightning's bars write to stdout
        lif_mode=args.lif_mode,
        status=sys.stderr,
    )
    machine = machine_description()
    summary = summarize(rows)
    if args.json:
        print(json.dumps({"rows": rows, "summary": summary}, indent=2))
    else:
        print(format_table(rows, machine))
    if args.plot:
        plot_accuracy(rows, summary, args.plot, f"neurojoule bench accuracy: {machine}"[:110])
        print(f"plot written to {args.plot}", file=sys.stderr)
    return 0


COMMAND = Command(
    "bench",
    "speed, memory and accuracy benchmarks, measured side by side",
    subcommands=(
        Command(
            "neuron",
            "LIF forward+backward vs SpikingJelly and snnTorch",
            run=run_neuron,
            add_arguments=add_neuron_arguments,
        ),
        Command(
            "sdn",
            "one spiking layer: BPTT, SLTT, SDN and the fastest exact LIF",
            run=run_sdn,
            add_arguments=add_sdn_arguments,
        ),
        Command(
            "memory",
            "peak memory of one SpikingSSM training step against L",
            run=run_memory,
            add_arguments=add_memory_arguments,
            seeded=False,  # peak memory does not depend on the values drawn
        ),
        Command(
            "accuracy",
            "SpikingSSM vs S4D at equal budget (trains both per config)",
            run=run_accuracy,
            add_arguments=add_accuracy_arguments,
        ),
    ),
)
