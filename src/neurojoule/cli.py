"""neurojoule <command>: parses arguments, calls the library; user mistakes exit with one line."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from neurojoule.allocator import keep_freed_memory
from neurojoule.train.config import LIF_MODES


class _OneLineParser(argparse.ArgumentParser):
    """argparse that reports a bad argument in one line (no usage dump) and exits 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _add_command(
    sub, name: str, help_text: str, func, *, seeded: bool = True
) -> argparse.ArgumentParser:
    """A subcommand; `seeded` ones (those that draw random numbers) take --seed."""
    parser = sub.add_parser(name, help=help_text, description=help_text)
    if seeded:
        parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.set_defaults(func=func)
    return parser


def _cmd_version(args) -> int:
    import neurojoule

    print(f"neurojoule {neurojoule.__version__}")
    return 0


def _cmd_demo(args) -> int:
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


def _cmd_bench_neuron(args) -> int:
    import torch

    from neurojoule.bench import machine_description
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
    )
    return _print_rows(
        args, rows, format_table, channels=args.channels, machine=machine_description()
    )


def _print_rows(args, rows: list[dict], format_table, **table_options) -> int:
    """A benchmark's rows as JSON (--json) or as its table, and as a PNG plot with --plot."""
    print(json.dumps(rows, indent=2) if args.json else format_table(rows, **table_options))
    if getattr(args, "plot", None):
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


def _add_plot(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--plot", metavar="PNG", help="also draw the rows against L as a PNG")


def _cmd_sdn_train(args) -> int:
    import torch

    from neurojoule.neuron.sdn import save_sdn
    from neurojoule.train.sdn import evaluate_sdn, train_sdn

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
        kernel_size=args.kernel_size,
        channels=args.channels,
        depth=args.depth,
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
    from neurojoule.data.cache import cache_dir

    return cache_dir() / "sdn" / f"sdn_tau_{tau:g}.json"


def _cmd_sdn_eval(args) -> int:
    from neurojoule.neuron.sdn import load_sdn
    from neurojoule.train.sdn import evaluate_sdn

    if args.checkpoint:
        return _sdn_eval_on_model(args)
    if args.path is None and args.tau is None:
        raise ValueError("give --tau for a shipped SDN, --path for a file or --checkpoint")
    net = load_sdn(decay=args.tau, path=args.path)
    result = evaluate_sdn(net, sequences=args.sequences, seed=args.seed)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(
        f"SDN tau={result['tau']:g} (depth {result['depth']}): spike agreement "
        f"{result['spike_agreement'] * 100:.3f} % on N(0,1) inputs, MAE {result['mae']:.2e}"
    )
    print(f"{'std':>6} {'mean':>6} {'agreement':>10}")
    for row in result["by_distribution"]:
        print(f"{row['std']:>6g} {row['mean']:>6g} {row['spike_agreement'] * 100:>9.3f}%")
    return 0


def _sdn_eval_on_model(args) -> int:
    from neurojoule.train.sdn import evaluate_sdn_on_model

    if args.tau is not None:
        raise ValueError("--tau does not go with --checkpoint: the model's neurons set tau")
    result = evaluate_sdn_on_model(
        args.checkpoint, limit_samples=args.sequences, sdn_path=args.path
    )
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(
        f"SDN vs exact LIF on the real inputs of {args.checkpoint} ({result['samples']} samples):"
    )
    for row in result["layers"]:
        print(
            f"  {row['layer']}: {row['spike_agreement'] * 100:.3f} % "
            f"(input mean {row['input_mean']:.2f}, std {row['input_std']:.2f})"
        )
    return 0


def _cmd_bench_sdn(args) -> int:
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


def _cmd_bench_memory(args) -> int:
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


def _cmd_bench_accuracy(args) -> int:
    import torch

    from neurojoule.bench import machine_description
    from neurojoule.bench.accuracy import format_table, run, summarize
    from neurojoule.bench.plots import plot_accuracy

    torch.set_num_threads(args.threads)
    seeds = range(args.seed, args.seed + args.repeats)
    rows = run(
        configs=args.configs,
        out=args.out,
        seeds=seeds,
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


def _device_description(device: str) -> str:
    import torch

    from neurojoule.bench import machine_description

    if device.startswith("cuda"):
        return f"{torch.cuda.get_device_name(torch.device(device))}, torch {torch.__version__}"
    return machine_description()


def _cmd_train(args) -> int:
    from neurojoule.data import is_lm_task
    from neurojoule.train import train
    from neurojoule.train.config import load_config
    from neurojoule.train.language_model import train_lm

    overrides = list(args.set or [])
    if args.epochs:
        overrides.append(f"optim.epochs={args.epochs}")
    if args.max_steps:
        overrides.append(f"optim.max_steps={args.max_steps}")
    config = load_config(
        args.config or args.task,
        overrides,
        model=args.model,
        task=args.task,
        seed=args.seed,
        lif_mode=args.lif_mode,
    )
    written_for = load_config(args.config).task if args.config else args.task
    if written_for != config.task:
        print(
            f"note: config {args.config} was written for task {written_for}; training "
            f"{config.task} with its settings",
            file=sys.stderr,
        )
    out = args.out or f"runs/{args.model}-{Path(args.config or args.task).stem}-seed{args.seed}"
    fit = train_lm if is_lm_task(config.task) else train
    result = fit(config, out, resume=args.resume, progress=not args.quiet)
    metrics = ", ".join(f"{name} {value:.4g}" for name, value in result.test_metrics.items())
    print(f"{config.model} on {config.task}, {result.tested_checkpoint.name}: {metrics}")
    print(f"run written to {result.run_dir}; evaluate with: neurojoule eval {result.run_dir}")
    return 0


def _cmd_eval(args) -> int:
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
        return 0
    print((format_lm_evaluation if language_model else format_evaluation)(result))
    return 0


def _cmd_models(args) -> int:
    from neurojoule.models import list_models, model_entry
    from neurojoule.models.registry import parameter_count

    rows = [
        {
            "name": name,
            "params": parameter_count(name),
            "input_shape": list(model_entry(name).input_shape),
            "description": model_entry(name).description,
        }
        for name in list_models()
    ]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    width = max(len(row["name"]) for row in rows)
    for row in rows:
        shape = "[" + ", ".join(map(str, row["input_shape"])) + "]"
        print(
            f"{row['name']:<{width}}  {row['params'] / 1e6:8.2f}M  {shape:<22} {row['description']}"
        )
    return 0


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


def _device(text: str) -> str:
    """cpu, cuda or cuda:N; cuda only where this machine has it."""
    kind, _, index = text.partition(":")
    if kind not in ("cpu", "cuda") or (index and (kind == "cpu" or not index.isdigit())):
        raise argparse.ArgumentTypeError(f"expected cpu, cuda or cuda:N, got {text!r}")
    if kind == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise argparse.ArgumentTypeError(f"{text}: CUDA is not available on this machine")
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(
        prog="neurojoule",
        description="Build, train, search and measure energy-efficient spiking neural networks.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")
    _add_demo(sub)
    _add_train_and_eval(sub)
    _add_sdn(sub)
    _add_bench(sub)
    models = _add_command(
        sub,
        "models",
        "list the registered models: parameters and input shape",
        _cmd_models,
        seeded=False,
    )
    _add_json(models, "a list of {name, params, input_shape, description}")
    _add_command(sub, "version", "print the installed version", _cmd_version, seeded=False)
    return parser


def _add_json(parser: argparse.ArgumentParser, what: str = "the result") -> None:
    parser.add_argument("--json", action="store_true", help=f"print {what} as JSON")


def _add_lengths(parser: argparse.ArgumentParser, default: list[int]) -> None:
    parser.add_argument(
        "--lengths",
        type=_positive_int,
        nargs="+",
        default=default,
        help=f"sequence lengths L (default {' '.join(map(str, default))})",
    )


def _add_demo(sub) -> None:
    demo = _add_command(
        sub,
        "demo",
        "train SpikingSSM on a small ListOps set (or a LIF net on digits), report accuracy+energy",
        _cmd_demo,
    )
    demo.add_argument(
        "--task", choices=["listops", "digits"], default="listops", help="(default listops)"
    )
    demo.add_argument(
        "--epochs", type=_positive_int, help="epochs (default: 3 for listops, 60 for digits)"
    )
    demo.add_argument("--threads", type=_positive_int, help="torch threads (default: torch's)")
    demo.add_argument(
        "--energy-table",
        default="45nm",
        help="energy per op: a table name (45nm) or 'mac=PJ,ac=PJ' (default 45nm)",
    )
    _add_json(demo)


def _add_train_and_eval(sub) -> None:
    train = _add_command(sub, "train", "train a model on a task (Lightning)", _cmd_train)
    train.add_argument(
        "model",
        help="a name from `neurojoule models`: spiking-ssm or s4d (sequence tasks), "
        "spiking-ssm-lm or s4d-lm (language modelling), spiking-mlp or spikformer (images)",
    )
    train.add_argument(
        "--task",
        "--dataset",
        required=True,
        help="listops, fashion-mnist-seq, imdb, aan, ...; images: fashion-mnist, cifar10, "
        "cifar100, digits; language modelling: kjv, wikitext-103",
    )
    train.add_argument("--config", help="config name (default: the task's) or YAML path")
    train.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override a config field, e.g. --set model_options.d_model=128 (repeatable)",
    )
    train.add_argument("--out", help="run folder (default runs/MODEL-CONFIG-seedN)")
    train.add_argument(
        "--resume", action="store_true", help="continue from OUT/checkpoints/last.ckpt"
    )
    train.add_argument("--epochs", type=_positive_int, help="override optim.epochs")
    train.add_argument("--max-steps", type=_positive_int, help="stop after this many steps")
    train.add_argument(
        "--lif-mode",
        choices=LIF_MODES,
        help="training mode of the spiking layers (default auto: the fastest, measured)",
    )
    train.add_argument("--quiet", action="store_true", help="no progress bar")

    evaluate = _add_command(
        sub,
        "eval",
        "accuracy (perplexity for a language model), spike rates and energy of a checkpoint",
        _cmd_eval,
        seeded=False,  # the data are the checkpoint's: its config's seed picks any subset
    )
    evaluate.add_argument("checkpoint", help="a .ckpt written by neurojoule train")
    evaluate.add_argument("--split", default="test", choices=["train", "val", "test"])
    evaluate.add_argument(
        "--lif-mode",
        default="bptt",
        choices=["bptt", "sltt", "sdn"],
        help="LIF used for evaluation (default bptt: the exact LIF)",
    )
    evaluate.add_argument("--energy-table", default="45nm", help="45nm or 'mac=PJ,ac=PJ'")
    size = evaluate.add_mutually_exclusive_group()
    size.add_argument(
        "--limit", type=_positive_int, help="evaluate a subset, drawn with the run's seed"
    )
    size.add_argument(
        "--whole-split",
        action="store_true",
        help="evaluate every sample of the split (default: the config's limit_eval_samples)",
    )
    _add_json(evaluate)


def _add_sdn(sub) -> None:
    sdn = sub.add_parser("sdn", help="the surrogate dynamic network: train and evaluate")
    actions = sdn.add_subparsers(dest="sdn", required=True, metavar="action")
    train = _add_command(actions, "train", "train an SDN for one decay tau", _cmd_sdn_train)
    train.add_argument("--tau", type=_positive_float, required=True, help="LIF decay, e.g. 0.125")
    train.add_argument("--out", help="output JSON (default: $NEUROJOULE_CACHE/sdn/sdn_tau_T.json)")
    train.add_argument("--epochs", type=_positive_int, default=100, help="(default 100)")
    train.add_argument("--sequences", type=_positive_int, default=50_000, help="(default 50000)")
    train.add_argument("--length", type=_positive_int, default=1024, help="(default 1024)")
    train.add_argument("--batch-size", type=_positive_int, default=64, help="(default 64)")
    train.add_argument(
        "--kernel-size",
        type=_positive_int,
        default=8,
        help="steps of input history the SDN sees (default 8, as published)",
    )
    train.add_argument(
        "--channels",
        type=_positive_int,
        default=8,
        help="hidden channels (default 8, as published)",
    )
    train.add_argument(
        "--depth",
        type=_positive_int,
        default=1,
        help="residual channel-mixing layers (default 1, as published; 3 suits tau 0.25, 0.5)",
    )
    train.add_argument("--device", type=_device, default="cpu", help="cpu or cuda (default cpu)")
    train.add_argument("--threads", type=_positive_int, help="CPU threads")
    train.add_argument(
        "--max-minutes", type=_positive_float, help="stop after the last epoch that fits"
    )
    evaluate = _add_command(
        actions, "eval", "spike agreement of an SDN with the exact LIF", _cmd_sdn_eval
    )
    evaluate.add_argument("--tau", type=_positive_float, help="a shipped SDN: 0.125, 0.25, 0.5")
    evaluate.add_argument(
        "--path", help="an SDN file written by `neurojoule sdn train` (with --tau: checked)"
    )
    evaluate.add_argument(
        "--checkpoint",
        help="a trained model: agreement on the currents its neurons receive (shipped SDN, or "
        "--path)",
    )
    evaluate.add_argument(
        "--sequences",
        type=_positive_int,
        default=1000,
        help="N(0,1) sequences, >= 4 (default 1000); with --checkpoint: test samples",
    )
    _add_json(evaluate)


def _add_bench(sub) -> None:
    bench = sub.add_parser("bench", help="speed and memory benchmarks, measured side by side")
    benchmarks = bench.add_subparsers(dest="bench", required=True, metavar="benchmark")
    neuron = _add_command(
        benchmarks, "neuron", "LIF forward+backward vs SpikingJelly and snnTorch", _cmd_bench_neuron
    )
    _add_lengths(neuron, [1024, 4096, 16384])
    neuron.add_argument("--channels", type=_positive_int, default=2048, help="(default 2048)")
    neuron.add_argument("--repeats", type=_positive_int, default=5, help="timed runs (median)")
    neuron.add_argument(
        "--snntorch-max-length",
        type=_positive_int,
        default=4096,
        help="skip snnTorch above this L: it is far slower (default 4096)",
    )
    neuron.add_argument("--threads", type=_positive_int, default=2, help="threads (default 2)")
    _add_json(neuron, "one row per L")
    _add_plot(neuron)

    sdn = _add_command(
        benchmarks,
        "sdn",
        "one spiking layer: BPTT, SLTT, SDN and the fastest exact LIF",
        _cmd_bench_sdn,
    )
    _add_lengths(sdn, [1024, 2048, 4096, 8192, 16384])
    sdn.add_argument("--batch", type=_positive_int, default=64, help="batch (default 64)")
    sdn.add_argument("--channels", type=_positive_int, default=16, help="channels (default 16)")
    sdn.add_argument("--repeats", type=_positive_int, default=3, help="timed runs (median)")
    sdn.add_argument(
        "--bptt-max-length",
        type=_positive_int,
        default=8192,
        help="skip the step-by-step methods above this L (default 8192)",
    )
    sdn.add_argument("--device", type=_device, default="cpu", help="cpu or cuda (default cpu)")
    sdn.add_argument("--threads", type=_positive_int, default=2, help="CPU threads (default 2)")
    _add_json(sdn, "one row per L")
    _add_plot(sdn)

    accuracy = _add_command(
        benchmarks,
        "accuracy",
        "SpikingSSM vs S4D at equal budget (trains both per config)",
        _cmd_bench_accuracy,
    )
    accuracy.add_argument(
        "--configs",
        nargs="+",
        default=["fashion-mnist-seq-cpu", "listops-cpu"],
        help="training configs (default: the two CPU-sized ones)",
    )
    accuracy.add_argument(
        "--repeats",
        type=_positive_int,
        default=1,
        help="train each model with seeds SEED .. SEED+REPEATS-1 (default 1)",
    )
    accuracy.add_argument("--out", default="runs/bench-accuracy", help="folder for the runs")
    accuracy.add_argument(
        "--lif-mode",
        default="auto",
        choices=LIF_MODES,
        help="how SpikingSSM trains (default auto: the fastest on the device); its runs get "
        "their own folders, S4D runs serve every mode",
    )
    accuracy.add_argument("--threads", type=_positive_int, default=2, help="threads (default 2)")
    _add_json(accuracy, "rows (one per config, model and seed) and a summary per config")
    accuracy.add_argument(
        "--plot", metavar="PNG", help="also draw the accuracies of both models as a PNG"
    )

    memory = _add_command(
        benchmarks,
        "memory",
        "peak memory of one SpikingSSM training step against L",
        _cmd_bench_memory,
        seeded=False,  # peak memory does not depend on the values drawn
    )
    _add_lengths(memory, [1024, 2048, 4096, 8192, 16384])
    memory.add_argument("--batch", type=_positive_int, default=8, help="batch (default 8)")
    memory.add_argument("--d-model", type=_positive_int, default=64, help="channels (default 64)")
    memory.add_argument("--layers", type=_positive_int, default=2, help="layers (default 2)")
    memory.add_argument("--lif-mode", default="bptt", choices=["bptt", "sltt", "sdn"])
    memory.add_argument("--device", type=_device, default="cpu", help="cpu or cuda (default cpu)")
    _add_json(memory, "one row per L")
    _add_plot(memory)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    keep_freed_memory()
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, PermissionError, IsADirectoryError) as error:
        print(f"neurojoule {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("neurojoule: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
