"""The command line's shape: one module per command, arguments built for the command named,
one-line argument errors, --seed only where numbers are drawn, every default shown."""

import argparse
import json
import subprocess
import sys

import pytest

from neurojoule.cli import COMMANDS, build_parser, main


def test_version(capsys):
    from importlib.metadata import version

    assert main(["version"]) == 0
    assert capsys.readouterr().out == f"neurojoule {version('neurojoule')}\n"


@pytest.mark.parametrize(
    "argv",
    [
        ["no-such-command"],
        ["demo", "--epochs", "0"],
        ["demo", "--seed", "-1"],
        ["bench", "neuron", "--lengths", "x"],
        [],
        ["sdn", "train", "--decay", "0.125", "--device", "gpu"],
        ["sdn", "train", "--decay", "inf"],
        ["bench", "sdn", "--device", "cpu:0"],
        ["bench", "memory", "--device", "cuda:x"],
        ["train", "spiking-ssm", "--task", "no-such-task"],
        ["eval", "x.ckpt", "--limit", "3", "--whole-split"],
    ],
)
def test_bad_arguments_exit_2_with_one_line(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and ": error: " in err and "Traceback" not in err


HELP = [
    (["--help"], False),
    (["demo", "--help"], True),
    (["train", "--help"], True),
    (["eval", "--help"], False),
    (["models", "--help"], False),
    (["configs", "--help"], False),
    (["sdn", "train", "--help"], True),
    (["sdn", "eval", "--help"], True),
    (["bench", "neuron", "--help"], True),
    (["bench", "sdn", "--help"], True),
    (["bench", "memory", "--help"], False),
    (["bench", "accuracy", "--help"], True),
    (["supernet", "train", "--help"], True),
    (["supernet", "extract", "--help"], True),
    (["search", "--help"], True),
    (["version", "--help"], False),
    (["generate", "--help"], True),
    (["export", "--help"], False),
]


@pytest.mark.parametrize("argv, seeded", HELP)
def test_every_command_has_help_and_only_random_ones_take_a_seed(argv, seeded, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "usage" in out
    assert ("--seed" in out) == seeded


def _leaf_parsers(parser: argparse.ArgumentParser, path=()):
    """(command path, parser) of every command that runs, in the whole parser."""
    groups = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not groups:
        yield path, parser
        return
    for name, child in groups[0].choices.items():
        yield from _leaf_parsers(child, (*path, name))


def test_the_help_lists_every_command_and_each_has_a_module():
    import neurojoule.cli as cli

    leaves = {" ".join(path) for path, _ in _leaf_parsers(build_parser())}
    assert leaves == {
        "demo",
        "train",
        "eval",
        "generate",
        "export",
        "models",
        "configs",
        "version",
        "sdn train",
        "sdn eval",
        "bench neuron",
        "bench sdn",
        "bench memory",
        "bench accuracy",
        "supernet train",
        "supernet extract",
        "search",
        "evolve weights",
        "evolve neurons",
    }
    for command in COMMANDS:
        module = getattr(cli, "evaluate" if command.name == "eval" else command.name)
        assert module.COMMAND is command


def test_every_option_shows_its_default():
    """An option with a value shows its default in --help: the value, or in words what
    happens without it."""
    missing = []
    for path, parser in _leaf_parsers(build_parser()):
        formatter = parser._get_formatter()
        for action in parser._actions:
            if not action.option_strings or action.nargs == 0 or action.required:
                continue  # positionals, flags (--json, --quiet, --help), required options
            if "default" not in formatter._expand_help(action):
                missing.append(f"{' '.join(path)} {action.option_strings[0]}")
    assert missing == []


def test_defaults_are_the_libraries():
    """The defaults the parser shows and uses are those of the functions it calls."""
    import inspect

    from neurojoule.bench import memory, neuron
    from neurojoule.bench import sdn as bench_sdn
    from neurojoule.train import demo, evaluation, sdn

    def parsed(*argv):
        return build_parser(list(argv)).parse_args(list(argv))

    def default(function, name):
        return inspect.signature(function).parameters[name].default

    sdn_train = parsed("sdn", "train", "--decay", "0.5")
    for name in ("epochs", "sequences", "length", "batch_size", "kernel_size", "channels"):
        assert getattr(sdn_train, name) == default(sdn.train_sdn, name)
    assert sdn_train.depth == default(sdn.train_sdn, "depth")
    bench = parsed("bench", "neuron")
    assert tuple(bench.lengths) == default(neuron.run, "lengths")
    assert bench.channels == default(neuron.run, "channels")
    assert bench.repeats == default(neuron.run, "repeats")
    assert parsed("bench", "sdn").bptt_max_length == default(bench_sdn.run, "bptt_max_length")
    assert parsed("bench", "memory").d_model == default(memory.run, "d_model")
    assert parsed("bench", "memory").layers == default(memory.run, "n_layers")
    evaluation_args = parsed("eval", "x.ckpt")
    assert evaluation_args.split == default(evaluation.evaluate, "split")
    assert evaluation_args.lif_mode == default(evaluation.evaluate, "lif_mode")
    demo_args = parsed("demo")
    assert demo_args.task == default(demo.run_demo, "task")
    assert demo_args.energy_table == default(demo.run_demo, "energy_table")


def test_the_parser_built_for_a_command_parses_as_the_whole_one():
    argv = ["bench", "sdn", "--lengths", "64", "128", "--batch", "2", "--json"]
    assert vars(build_parser(argv).parse_args(argv)) == vars(build_parser().parse_args(argv))


def test_lif_modes_are_auto_and_the_neurons_modes():
    from neurojoule.neuron import LIF_MODES as NEURON_MODES
    from neurojoule.train.config import EVAL_LIF_MODES, LIF_MODES

    assert LIF_MODES[0] == "auto" and LIF_MODES[1:] == NEURON_MODES == EVAL_LIF_MODES
    parsers = dict(_leaf_parsers(build_parser()))

    def choices(path, option):
        (action,) = (a for a in parsers[path]._actions if option in a.option_strings)
        return tuple(action.choices)

    assert choices(("train",), "--lif-mode") == LIF_MODES
    assert choices(("bench", "accuracy"), "--lif-mode") == LIF_MODES
    assert choices(("eval",), "--lif-mode") == NEURON_MODES
    assert choices(("bench", "memory"), "--lif-mode") == NEURON_MODES


def test_light_commands_import_no_torch():
    """`version` and the top-level help build only their own arguments, so they start fast."""
    code = (
        "import sys, contextlib, io; from neurojoule.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    main(['version'])\n"
        "    try:\n        main(['--help'])\n    except SystemExit:\n        pass\n"
        "print('torch' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip() == "False", done.stderr


def test_a_seed_given_to_a_command_without_randomness_is_an_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["eval", "some.ckpt", "--seed", "3"])
    assert exit_info.value.code == 2
    assert "--seed" in capsys.readouterr().err


def test_python_m_neurojoule_and_the_script_run_the_same_main():
    done = subprocess.run(
        [sys.executable, "-m", "neurojoule", "configs", "--json"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    from neurojoule.train.config import config_names

    assert [row["name"] for row in json.loads(done.stdout)] == config_names()
    from importlib.metadata import entry_points

    (script,) = (e for e in entry_points(group="console_scripts") if e.name == "neurojoule")
    assert script.value == "neurojoule.cli:main" and script.load() is main
