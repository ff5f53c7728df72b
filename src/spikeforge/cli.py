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
    result = run_demo(
        seed=args.seed, epochs=args.epochs, progress=not args.json, energy_table=args.energy_table
    )
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


def _cmd_sdn_train(args) -> int:
    import torch

    from spikeforge.neuron.sdn import save_sdn
    from spikeforge.train.sdn import evaluate_sdn, train_sdn

    if args.threads:
        torch.set_num_threads(args.threads)
    net, metrics = train_sdn(
        args.tau,
        sequences=args.sequences,
        length=args.length,
        epochs=args.epochs,
        batch_size=args.batch_size,
        seed=args.seed,
        device=args.device,
        max_seconds=args.max_minutes * 60 if args.max_minutes else None,
    )
    metrics["eval"] = evaluate_sdn(net.cpu())
    out = args.out or _default_sdn_path(args.tau)
    save_sdn(net, out, metrics)
    print(
        f"SDN tau={args.tau:g}: spike agreement {metrics['eval']['spike_agreement'] * 100:.3f} % "
        f"on N(0,1), MAE {metrics['eval']['mae']:.2e}; written to {out}"
    )
    return 0


def _default_sdn_path(tau: float):
    import os
    from pathlib import Path

    root = Path(os.environ.get("SPIKEFORGE_CACHE", Path.home() / ".cache" / "spikeforge"))
    return root / "sdn" / f"sdn_tau_{tau:g}.json"


def _cmd_sdn_eval(args) -> int:
    from spikeforge.neuron.sdn import load_sdn
    from spikeforge.train.sdn import evaluate_sdn

    if args.path is None and args.tau is None:
        raise ValueError("give --tau for a shipped SDN or --path for a file")
    net = load_sdn(tau=None if args.path else args.tau, path=args.path)
    result = evaluate_sdn(net, sequences=args.sequences, seed=args.seed)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(
        f"SDN tau={result['tau']:g}: spike agreement {result['spike_agreement'] * 100:.3f} % "
        f"on N(0,1) inputs, MAE {result['mae']:.2e}"
    )
    print(f"{'std':>6} {'mean':>6} {'agreement':>10}")
    for row in result["by_distribution"]:
        print(f"{row['std']:>6g} {row['mean']:>6g} {row['spike_agreement'] * 100:>9.3f}%")
    return 0


def _cmd_bench_sdn(args) -> int:
    import torch

    from spikeforge.bench.sdn import format_table, run

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
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(format_table(rows, machine=_device_description(args.device)))
    return 0


def _device_description(device: str) -> str:
    import torch

    from spikeforge.bench import machine_description

    if device.startswith("cuda"):
        return f"{torch.cuda.get_device_name(torch.device(device))}, torch {torch.__version__}"
    return machine_description()


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value}")
    return value


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
    demo.add_argument(
        "--energy-table",
        default="45nm",
        help="energy per op: a table name (45nm) or 'mac=PJ,ac=PJ' (default 45nm)",
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

    bench_sdn = _add_command(
        bench_sub,
        "sdn",
        "one spiking layer: BPTT, SLTT, SDN and the fastest exact LIF",
        _cmd_bench_sdn,
    )
    bench_sdn.add_argument(
        "--lengths",
        type=_positive_int,
        nargs="+",
        default=[1024, 2048, 4096, 8192, 16384],
        help="sequence lengths L (default 1K..16K)",
    )
    bench_sdn.add_argument("--batch", type=_positive_int, default=64, help="batch (default 64)")
    bench_sdn.add_argument(
        "--channels", type=_positive_int, default=16, help="channels (default 16)"
    )
    bench_sdn.add_argument("--repeats", type=_positive_int, default=3, help="timed runs (median)")
    bench_sdn.add_argument(
        "--bptt-max-length",
        type=_positive_int,
        default=8192,
        help="skip the step-by-step methods above this L (default 8192)",
    )
    bench_sdn.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    bench_sdn.add_argument(
        "--threads", type=_positive_int, default=2, help="CPU threads (default 2)"
    )
    bench_sdn.add_argument("--json", action="store_true", help="print one JSON row per L")

    sdn = sub.add_parser("sdn", help="the surrogate dynamic network: train and evaluate")
    sdn_sub = sdn.add_subparsers(dest="sdn", required=True, metavar="action")
    train = _add_command(sdn_sub, "train", "train an SDN for one decay tau", _cmd_sdn_train)
    train.add_argument("--tau", type=_positive_float, required=True, help="LIF decay, e.g. 0.125")
    train.add_argument("--out", help="output JSON (default: $SPIKEFORGE_CACHE/sdn/sdn_tau_T.json)")
    train.add_argument("--epochs", type=_positive_int, default=100, help="epochs (default 100)")
    train.add_argument("--sequences", type=_positive_int, default=50_000, help="(default 50000)")
    train.add_argument("--length", type=_positive_int, default=1024, help="(default 1024)")
    train.add_argument("--batch-size", type=_positive_int, default=64, help="(default 64)")
    train.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    train.add_argument("--threads", type=_positive_int, help="CPU threads")
    train.add_argument(
        "--max-minutes",
        type=_positive_float,
        help="stop after the last epoch that fits in this time",
    )
    evaluate = _add_command(
        sdn_sub, "eval", "spike agreement of an SDN with the exact LIF", _cmd_sdn_eval
    )
    evaluate.add_argument("--tau", type=_positive_float, help="a shipped SDN: 0.125, 0.25 or 0.5")
    evaluate.add_argument("--path", help="an SDN file written by `spikeforge sdn train`")
    evaluate.add_argument("--sequences", type=_positive_int, default=1000, help="(default 1000)")
    evaluate.add_argument("--json", action="store_true", help="print the result as JSON")

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
