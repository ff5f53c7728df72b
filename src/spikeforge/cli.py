"""spikeforge <command>: parses arguments, calls the library; user mistakes exit with one line."""

from __future__ import annotations

import argparse
import json
import sys


class _OneLineParser(argparse.ArgumentParser):
    """argparse that reports a bad argument in one line (no usage dump) and exits 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _add_command(sub, name: str, help_text: str, func) -> argparse.ArgumentParser:
    parser = sub.add_parser(name, help=help_text, description=help_text)
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.set_defaults(func=func)
    return parser


def _cmd_version(args) -> int:
    import spikeforge

    print(f"spikeforge {spikeforge.__version__}")
    return 0


def _cmd_demo(args) -> int:
    import torch

    from spikeforge.train.demo import run_demo

    if args.threads:
        torch.set_num_threads(args.threads)
    result = run_demo(seed=args.seed, epochs=args.epochs, progress=not args.json)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
        return 0
    print(
        f"digits test accuracy: {result.accuracy * 100:.2f} % "
        f"({result.epochs} epochs, {result.train_seconds:.1f} s of training)"
    )
    print(result.energy.format_table())
    return 0


def _cmd_bench_neuron(args) -> int:
    import torch

    from spikeforge.bench import machine_description
    from spikeforge.bench.neuron import format_table, run

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rows = run(
        lengths=tuple(args.lengths),
        channels=args.channels,
        repeats=args.repeats,
        snntorch_max_length=args.snntorch_max_length,
        seed=args.seed,
        progress=not args.json,
    )
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(format_table(rows, channels=args.channels, machine=machine_description()))
    return 0


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(
        prog="spikeforge",
        description="Build, train, search and measure energy-efficient spiking neural networks.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")

    demo = _add_command(
        sub,
        "demo",
        "train a small LIF network on scikit-learn digits, report accuracy and energy",
        _cmd_demo,
    )
    demo.add_argument(
        "--epochs", type=_positive_int, default=60, help="training epochs (default 60)"
    )
    demo.add_argument(
        "--threads", type=_positive_int, help="torch threads (default: torch's choice)"
    )
    demo.add_argument("--json", action="store_true", help="print the result as JSON")

    bench = sub.add_parser("bench", help="speed benchmarks, side by side with peers")
    bench_sub = bench.add_subparsers(dest="bench", required=True, metavar="benchmark")
    neuron = _add_command(
        bench_sub, "neuron", "LIF forward+backward vs SpikingJelly and snnTorch", _cmd_bench_neuron
    )
    neuron.add_argument(
        "--lengths",
        type=_positive_int,
        nargs="+",
        default=[1024, 4096, 16384],
        help="sequence lengths L (default 1024 4096 16384)",
    )
    neuron.add_argument(
        "--channels", type=_positive_int, default=2048, help="neurons (default 2048)"
    )
    neuron.add_argument(
        "--repeats", type=_positive_int, default=5, help="timed runs per case (median)"
    )
    neuron.add_argument(
        "--snntorch-max-length",
        type=_positive_int,
        default=4096,
        help="skip snnTorch above this L: it is far slower (default 4096)",
    )
    neuron.add_argument(
        "--threads", type=_positive_int, default=2, help="torch/numba threads (default 2)"
    )
    neuron.add_argument("--json", action="store_true", help="print one JSON row per L")

    _add_command(sub, "version", "print the installed version", _cmd_version)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, PermissionError, IsADirectoryError) as error:
        print(f"spikeforge {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("spikeforge: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
