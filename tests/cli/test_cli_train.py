"""neurojoule train: a default config for every task its --help lists, results (and nothing
else) on stdout, --quiet or not."""

import pickle
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from neurojoule.cli import build_parser, main


def _train_parser():
    import argparse

    (group,) = (a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return group.choices["train"]


def _listed_tasks() -> list[str]:
    """The task names that `neurojoule train --help` prints, read from the help text."""
    text = " ".join(_train_parser().format_help().split())
    listed = re.search(r"--task TASK, --dataset TASK (.*?) --config", text).group(1)
    return [name.strip() for part in listed.split(";") for name in part.split(":", 1)[1].split(",")]


def test_the_help_lists_exactly_the_tasks_it_accepts():
    (task,) = (a for a in _train_parser()._actions if "--task" in a.option_strings)
    assert sorted(_listed_tasks()) == sorted(task.choices)
    assert {"digits", "cifar10", "cifar100", "fashion-mnist-perm", "kjv"} <= set(task.choices)


@pytest.mark.parametrize("task", _listed_tasks())
def test_every_listed_task_has_a_default_config(task, fake_train, capsys):
    from neurojoule.train.config import config_path, read_config_file

    assert main(["train", "spiking-ssm", "--task", task, "--quiet"]) == 0
    (config,) = fake_train
    assert config.task == task
    out = capsys.readouterr().out
    (name,) = re.findall(r"runs/spiking-ssm-(.*)-seed0;", out)
    assert read_config_file(config_path(name)).get("task") == task  # written for this task


def test_quiet_still_prints_the_result_and_the_run_folder(fake_train, tmp_path, capfd):
    out_dir = tmp_path / "run"
    argv = ["train", "s4d", "--task", "listops", "--config", "listops-cpu", "--quiet"]
    assert main([*argv, "--out", str(out_dir)]) == 0
    out, err = capfd.readouterr()
    assert out.splitlines() == [
        "s4d on listops, best-epoch=0.ckpt: test/acc 0.5, test/loss 1.25",
        f"run written to {out_dir}; evaluate with: neurojoule eval {out_dir}",
    ]
    assert err == ""


def test_train_notes_a_config_written_for_another_task(fake_train, tmp_path, capsys):
    base = ["train", "spiking-mlp", "--config", "fashion-mnist", "--out", str(tmp_path / "run")]
    assert main([*base, "--task", "digits"]) == 0
    assert capsys.readouterr().err == (
        "note: config fashion-mnist was written for task fashion-mnist; training digits with its "
        "settings\n"
    )
    assert main([*base, "--task", "fashion-mnist"]) == 0
    assert capsys.readouterr().err == ""
    assert [config.task for config in fake_train] == ["digits", "fashion-mnist"]


def test_a_config_whose_task_options_do_not_fit_the_task_is_one_line(fake_train, capsys):
    argv = ["train", "s4d", "--config", "listops-cpu", "--task", "imdb"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "task 'imdb' has no options" in err and err.count("\n") == 1 and fake_train == []


def test_cli_fields_and_flags_reach_the_config(fake_train):
    argv = ["train", "s4d", "--task", "imdb", "--config", "listops-cpu", "--seed", "7"]
    argv += ["--epochs", "3", "--max-steps", "5", "--lif-mode", "sltt", "--quiet"]
    argv += ["--set", "task_options={}"]  # listops-cpu's options are ListOps'
    assert main([*argv, "--set", "optim.lr=0.5", "--set", "model_options.d_model=16"]) == 0
    (config,) = fake_train
    assert (config.model, config.task, config.seed, config.lif_mode) == ("s4d", "imdb", 7, "sltt")
    assert (config.optim.epochs, config.optim.max_steps, config.optim.lr) == (3, 5, 0.5)
    assert config.model_options["d_model"] == 16 and config.model_options["n_layers"] == 4


# ---- one real step on every task whose data this machine has -----------------------------

SMALL_SSM = ["model_options.d_model=8", "model_options.n_layers=1", "model_options.d_state=4"]
FEW = ["limit_train_samples=16", "limit_eval_samples=8", "optim.batch_size=8"]
FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


def _write_cifar(cache: Path, dataset: str) -> None:
    """Tiny CIFAR python pickles in the release's layout (random pixels and labels)."""
    rng = np.random.default_rng(0)
    classes, label_key = (10, "labels") if dataset == "cifar10" else (100, "fine_labels")
    folder = cache / ("cifar-10-batches-py" if dataset == "cifar10" else "cifar-100-python")
    folder.mkdir(parents=True)
    names = [f"data_batch_{i}" for i in range(1, 6)] if dataset == "cifar10" else ["train"]
    for name in [*names, "test_batch" if dataset == "cifar10" else "test"]:
        batch = {
            "data": rng.integers(0, 256, (12, 3072), dtype=np.uint8),
            label_key: [int(v) for v in rng.integers(0, classes, 12)],
        }
        (folder / name).write_bytes(pickle.dumps(batch))
    meta = ("batches.meta", "label_names") if dataset == "cifar10" else ("meta", "fine_label_names")
    (folder / meta[0]).write_bytes(pickle.dumps({meta[1]: [f"c{i}" for i in range(classes)]}))


CASES = {
    "listops": (
        "spiking-ssm",
        [*SMALL_SSM, "optim.batch_size=8", "task_options.n_train=16"]
        + ["task_options.n_val=8", "task_options.n_test=8"],
        None,
    ),
    "fashion-mnist-seq": ("spiking-ssm", [*SMALL_SSM, *FEW], FASHION_MNIST),
    "fashion-mnist-perm": ("spiking-ssm", [*SMALL_SSM, *FEW], FASHION_MNIST),
    "fashion-mnist": ("spiking-mlp", FEW, FASHION_MNIST),
    "digits": ("spiking-mlp", ["limit_eval_samples=32"], None),
    "digits/spikformer": ("spikformer", ["limit_eval_samples=32"], None),
    "kjv": ("spiking-ssm-lm", [*FEW[:2], "model_options.d_model=16"], "bible"),
    "cifar10": ("spiking-mlp-cifar", FEW, "written"),
    "cifar100": ("spiking-mlp-cifar", FEW, "written"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_task_trains_with_its_default_config(case, cache, tmp_path, capfd):
    """One step (two on digits, whose small vision models must fit 8x8 images) with the
    task's default config, progress on: stdout holds the result line and the run folder."""
    task = case.split("/")[0]
    model, overrides, needs = CASES[case]
    if isinstance(needs, Path) and not needs.is_dir():
        pytest.skip(f"needs {needs} (Debian's dataset-fashion-mnist)")
    if needs == "bible" and shutil.which("bible") is None:
        pytest.skip("needs Debian's bible-kjv (`bible`)")
    if needs == "written":
        _write_cifar(cache, task)
    out_dir = tmp_path / "run"
    steps = "2" if task == "digits" else "1"
    argv = ["train", model, "--task", task, "--max-steps", steps, "--out", str(out_dir)]
    for item in overrides:
        argv += ["--set", item]
    assert main(argv) == 0
    out, err = capfd.readouterr()
    first, second = out.splitlines()
    assert first.startswith(f"{model} on {task}, best-epoch=0.ckpt: test/")
    assert second.startswith(f"run written to {out_dir};")
    assert "it/s" in err or "s/it" in err  # Lightning's bars, on stderr
    import torch

    last = torch.load(out_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == int(steps)
