"""neurojoule train MODEL --task TASK: train with Lightning, then test the best checkpoint."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from neurojoule.cli.parsing import Command, add_run_folder, positive_int


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from neurojoule.data.tasks import LM_TASKS, TASKS
    from neurojoule.train.config import LIF_MODES, STRATEGIES, TASK_CONFIGS, TrainConfig

    parser.add_argument(
        "model",
        help="a name from `neurojoule models`: spiking-ssm or s4d (sequence tasks), "
        "spiking-ssm-lm or s4d-lm (language modelling), spiking-mlp or spikformer (images)",
    )
    parser.add_argument(
        "--task",
        "--dataset",
        required=True,
        choices=[*TASKS, *LM_TASKS],
        metavar="TASK",
        help=f"classification: {', '.join(TASKS)}; language modelling: {', '.join(LM_TASKS)}",
    )
    mapped = "; ".join(f"{task}: {name}" for task, name in TASK_CONFIGS.items())
    parser.add_argument(
        "--config",
        help="a config name (see `neurojoule configs`) or a YAML file (default: the config "
        f"named like the task; {mapped})",
    )
    add_run_folder(parser, "model_options.d_model=128", "runs/MODEL-CONFIG-seedN")
    parser.add_argument(
        "--epochs", type=positive_int, help="override optim.epochs (default: the config's)"
    )
    parser.add_argument(
        "--max-steps",
        type=positive_int,
        help="stop after this many steps (default: the config's optim.max_steps)",
    )
    parser.add_argument(
        "--devices",
        type=positive_int,
        help="processes per node, one per GPU (or CPU share) of a data-parallel run under "
        "Lightning's DDP; each takes optim.batch_size samples a step (default: the config's, 1)",
    )
    parser.add_argument(
        "--num-nodes",
        type=positive_int,
        help="machines of a data-parallel run, started by torchrun or srun (docs/distributed.md; "
        "default: the config's, 1)",
    )
    parser.add_argument(
        "--strategy",
        choices=STRATEGIES,
        help="Lightning's strategy (default: the config's, auto: DDP when there are several "
        "processes; ddp_find_unused_parameters_true for models with parameters a step leaves "
        "unused)",
    )
    parser.add_argument(
        "--lif-mode",
        choices=LIF_MODES,
        help="training mode of the spiking layers (default: the config's lif_mode, "
        f"{TrainConfig.lif_mode} unless it sets one; auto: the fastest, measured)",
    )
    parser.add_argument(
        "--init",
        metavar="CHECKPOINT",
        help="start from the model weights of this checkpoint (or run folder: its best), e.g. "
        "a subnet from `neurojoule supernet extract`; model options the config and --set leave "
        "unset come from it; ignored by --resume (default: fresh weights)",
    )
    parser.add_argument(
        "--quiet", action="store_true", help="no progress bars (the result is still printed)"
    )


def run(args: argparse.Namespace) -> int:
    import neurojoule.train as training
    from neurojoule.data import is_lm_task
    from neurojoule.train.config import default_config, load_config
    from neurojoule.train.fit import format_train_result, with_init_model_options
    from neurojoule.train.run_folder import is_main_process

    name = args.config or default_config(args.task)
    overrides = list(args.set or [])
    if args.epochs:
        overrides.append(f"optim.epochs={args.epochs}")
    if args.max_steps:
        overrides.append(f"optim.max_steps={args.max_steps}")
    for field in ("devices", "num_nodes", "strategy"):
        if getattr(args, field) is not None:
            overrides.append(f"{field}={getattr(args, field)}")
    config = load_config(
        name,
        overrides,
        model=args.model,
        task=args.task,
        seed=args.seed,
        lif_mode=args.lif_mode,
        init=args.init,
    )
    config = with_init_model_options(config)
    note_other_task(name, config.task)
    out = args.out or f"runs/{args.model}-{Path(name).stem}-seed{args.seed}"
    fit = training.train_lm if is_lm_task(config.task) else training.train
    result = fit(config, out, resume=args.resume, progress=not args.quiet)
    if is_main_process():  # the other ranks of a data-parallel run print nothing
        print(format_train_result(config, result))
    return 0


def note_other_task(name: str, task: str) -> None:
    """Say on stderr when the config `name` was written for another task than `task`."""
    from neurojoule.train.config import written_for

    intended = written_for(name)
    if intended != task:
        print(
            f"note: config {name} was written for task {intended}; training {task} with its "
            "settings",
            file=sys.stderr,
        )


COMMAND = Command(
    "train", "train a model on a task (Lightning)", run=run, add_arguments=add_arguments
)
