"""neurojoule evolve weights MODEL --task TASK: a network's weights trained without gradients,
by an evolution strategy whose population runs as one batched forward."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from neurojoule.cli.parsing import (
    Command,
    add_json,
    add_run_folder,
    positive_float,
    positive_int,
)


def add_weights_arguments(parser: argparse.ArgumentParser) -> None:
    from neurojoule.data.tasks import TASKS
    from neurojoule.search.es import ESConfig
    from neurojoule.search.weights import WeightEvolution

    parser.add_argument("model", help="a classifier from `neurojoule models`, e.g. dense-snn")
    parser.add_argument(
        "--task", "--dataset", required=True, choices=TASKS, metavar="TASK", help="the task"
    )
    parser.add_argument(
        "--config",
        help="a config name (see `neurojoule configs`) or a YAML file for the task, model "
        "options and sample limits (default: the task's config; its optim section is unused)",
    )
    add_run_folder(parser, "model_options.hidden=[64]", "runs/evolve-MODEL-TASK-seedN")
    for name, kind, what in (
        ("population", positive_int, "members per generation, an even number"),
        ("sigma", positive_float, "noise scale of the perturbations, in weight units"),
        ("lr", positive_float, "Adam's learning rate on the mean"),
    ):
        parser.add_argument(f"--{name}", type=kind, default=getattr(ESConfig, name), help=what)
    for name, what in (
        ("generations", "generations to run"),
        ("batch-size", "training samples per generation, the same for every member"),
        ("eval-every", "validate the mean every this many generations"),
    ):
        field = name.replace("-", "_")
        parser.add_argument(
            f"--{name}", type=positive_int, default=getattr(WeightEvolution, field), help=what
        )
    parser.add_argument(
        "--spike-cap",
        type=positive_float,
        help="a spike budget: spikes per sample above it cost fitness (default: none)",
    )
    parser.add_argument(
        "--spike-penalty",
        type=positive_float,
        default=WeightEvolution.spike_penalty,
        help="fitness lost per unit of relative excess over --spike-cap",
    )
    parser.add_argument(
        "--loop",
        action="store_true",
        help="run the members one after another instead of one batched forward (slower; "
        "for comparison)",
    )
    parser.add_argument(
        "--quiet", action="store_true", help="no progress lines (the result is still printed)"
    )
    add_json(parser, "the result (history included)")


def run_weights(args: argparse.Namespace) -> int:
    from neurojoule.search.es import ESConfig
    from neurojoule.search.weights import WeightEvolution, evolve_weights, format_evolution
    from neurojoule.train.config import default_config, load_config

    name = args.config or default_config(args.task)
    config = load_config(
        name, list(args.set or []), model=args.model, task=args.task, seed=args.seed
    )
    settings = WeightEvolution(
        es=ESConfig(population=args.population, sigma=args.sigma, lr=args.lr),
        generations=args.generations,
        batch_size=args.batch_size,
        eval_every=args.eval_every,
        spike_cap=args.spike_cap,
        spike_penalty=args.spike_penalty,
        batched=not args.loop,
    )
    out = args.out or f"runs/evolve-{args.model}-{Path(name).stem}-seed{args.seed}"
    result = evolve_weights(config, settings, out, resume=args.resume, progress=not args.quiet)
    if result is None:  # a torchrun rank other than 0: rank 0 reports
        return 0
    if args.json:
        test = result["test"]
        print(json.dumps({**result, "test": {**test, "energy": test["energy"].to_dict()}}))
    else:
        print(format_evolution(result))
    return 0


def accuracy_points(text: str) -> float:
    """Points of accuracy, a number in [0, 100)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 <= value < 100:
        raise argparse.ArgumentTypeError(f"expected accuracy points in [0, 100), got {text!r}")
    return value


def add_neurons_arguments(parser: argparse.ArgumentParser) -> None:
    from neurojoule.search.neurons import ALGORITHMS, GENES, GRID, NeuronSearch

    parser.add_argument(
        "checkpoint", help="a trained checkpoint or run folder (its best checkpoint)"
    )
    parser.add_argument(
        "--genes",
        default=",".join(NeuronSearch.genes),
        help=f"what to evolve, some of {','.join(GENES)}: per LIF layer a factor on its "
        "thresholds and on its time constant; a factor on T (direct-encoded image models)",
    )
    parser.add_argument(
        "--algorithm",
        choices=ALGORITHMS,
        default=NeuronSearch.algorithm,
        help="cma-es: continuous factors, the fittest within the accuracy drop; nsga2: factors "
        f"from {', '.join(map(str, GRID))} on validation error and energy",
    )
    for name, kind, what in (
        ("population", positive_int, "settings per generation"),
        ("generations", positive_int, "generations"),
        ("sigma", positive_float, "CMA-ES initial step size, in log-factor units"),
        ("val-limit", positive_int, "validation samples every setting is measured on"),
    ):
        field = name.replace("-", "_")
        parser.add_argument(f"--{name}", type=kind, default=getattr(NeuronSearch, field), help=what)
    parser.add_argument(
        "--shared",
        action="store_true",
        help="one threshold factor and one time factor for every LIF layer alike (default: one "
        "of each per layer)",
    )
    parser.add_argument(
        "--max-accuracy-drop",
        type=accuracy_points,
        default=NeuronSearch.max_accuracy_drop * 100,
        metavar="POINTS",
        help="validation accuracy may fall this many points below the trained network's",
    )
    parser.add_argument("--out", help="search folder (default runs/neurons-RUN-seedN)")
    parser.add_argument("--resume", action="store_true", help="continue OUT/search.pkl")
    parser.add_argument("--plot", metavar="PNG", help="also plot the front (default: none)")
    parser.add_argument(
        "--quiet", action="store_true", help="no progress lines (the result is still printed)"
    )
    add_json(parser, "the result")


def run_neurons(args: argparse.Namespace) -> int:
    from neurojoule.search.front import plot_front
    from neurojoule.search.neurons import NeuronSearch, evolve_neurons, format_neuron_result

    search = NeuronSearch(
        genes=tuple(g.strip() for g in args.genes.split(",")),
        algorithm=args.algorithm,
        population=args.population,
        generations=args.generations,
        sigma=args.sigma,
        val_limit=args.val_limit,
        max_accuracy_drop=args.max_accuracy_drop / 100,
        seed=args.seed,
        shared=args.shared,
    )
    out = args.out or f"runs/neurons-{Path(args.checkpoint).stem}-seed{args.seed}"
    result = evolve_neurons(args.checkpoint, search, out, args.resume, not args.quiet)
    if args.plot:
        plot_front(result, args.plot)
    print(json.dumps(result) if args.json else format_neuron_result(result))
    return 0


COMMAND = Command(
    "evolve",
    "evolutionary training without gradients",
    subcommands=(
        Command(
            "weights",
            "train a network's weights by an evolution strategy (OpenES, batched population)",
            run=run_weights,
            add_arguments=add_weights_arguments,
        ),
        Command(
            "neurons",
            "evolve the neuron parameters of a trained network, weights frozen (CMA-ES or NSGA-II)",
            run=run_neurons,
            add_arguments=add_neurons_arguments,
        ),
    ),
)
