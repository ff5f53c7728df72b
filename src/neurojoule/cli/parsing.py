"""What the commands share: a parser that reports mistakes in one line, commands described as
data and built on demand, help that shows every default, and argument types.

A command's arguments are built only when the command line names it, so that `neurojoule
version` or `neurojoule --help` import no more than they need: the defaults that a command
shows come from the library modules it calls (signatures and constants), and those import
torch.
"""

from __future__ import annotations

import argparse
import inspect
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a bad argument in one line (no usage dump) and exits 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {one_line(message)} (see {self.prog} --help)\n")


class DefaultsHelp(argparse.HelpFormatter):
    """Each option's help ends with its default, unless the help already says it (an option
    without a default value explains in words what happens without it)."""

    def _split_lines(self, text: str, width: int) -> list[str]:
        # never between the parts of a hyphenated name (fashion-mnist-perm, spiking-ssm-lm)
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        return textwrap.fill(
            " ".join(text.split()),
            width,
            initial_indent=indent,
            subsequent_indent=indent,
            break_on_hyphens=False,
        )

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (
            "default" in text
            or not action.option_strings
            or any(action.default is nothing for nothing in (None, False, argparse.SUPPRESS))
        ):
            return text
        value = action.default
        shown = " ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
        return f"{text} (default {shown.replace('%', '%%')})"


@dataclass(frozen=True)
class Command:
    """A command (or a group of them, with `subcommands`): its name, its one-line help, how
    to add its arguments and what runs it. `seeded` commands draw random numbers and take
    --seed."""

    name: str
    help: str
    run: Callable[[argparse.Namespace], int] | None = None
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None
    seeded: bool = True
    subcommands: tuple[Command, ...] = ()


def add_commands(
    parser: argparse.ArgumentParser,
    commands: Sequence[Command],
    argv: Sequence[str] | None,
    dest: str,
    metavar: str,
) -> None:
    """Subparsers for `commands`. With `argv` (the words after `parser`'s own), only the command
    it names is built in full; the others keep their name and help. Without it, all are."""
    chosen, rest = _first_word(argv)
    sub = parser.add_subparsers(dest=dest, required=True, metavar=metavar)
    for command in commands:
        child = sub.add_parser(
            command.name,
            help=command.help,
            description=command.help,
            formatter_class=DefaultsHelp,
        )
        if argv is not None and command.name != chosen:
            continue
        if command.subcommands:
            add_commands(child, command.subcommands, rest, command.name, "action")
            continue
        if command.seeded:
            child.add_argument("--seed", type=non_negative_int, default=0, help="random seed")
        if command.add_arguments is not None:
            command.add_arguments(child)
        child.set_defaults(run=command.run, prog=child.prog)


def _first_word(argv: Sequence[str] | None) -> tuple[str | None, list[str] | None]:
    if argv is None:
        return None, None
    for index, word in enumerate(argv):
        if not word.startswith("-"):
            return word, list(argv[index + 1 :])
    return None, []


def default_of(function: Callable, parameter: str):
    """The default value of `function`'s `parameter`: the library's, shown and used as is."""
    default = inspect.signature(function).parameters[parameter].default
    if default is inspect.Parameter.empty:
        raise TypeError(f"{function.__qualname__}({parameter}) has no default")
    return default


def one_line(text: object) -> str:
    """A message (a library's, perhaps over several lines) on one line."""
    return " ".join(str(text).split())


# ---- arguments ---------------------------------------------------------------------------


def add_run_folder(parser: argparse.ArgumentParser, set_example: str, default_out: str) -> None:
    """--set (config overrides), --out and --resume of a command that writes a run folder."""
    parser.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help=f"override a config field, e.g. --set {set_example} (repeatable; default: none)",
    )
    parser.add_argument("--out", help=f"run folder (default {default_out})")
    parser.add_argument(
        "--resume", action="store_true", help="continue from OUT/checkpoints/last.ckpt"
    )


def add_json(parser: argparse.ArgumentParser, what: str = "the result") -> None:
    parser.add_argument("--json", action="store_true", help=f"print {what} as JSON")


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value}")
    return value


def positive_int(text: str) -> int:
    value = _integer(text, "a positive integer")
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def non_negative_int(text: str) -> int:
    value = _integer(text, "an integer >= 0")
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {value}")
    return value


def _integer(text: str, expected: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None


def device(text: str) -> str:
    """cpu, cuda or cuda:N; cuda only where this machine has it."""
    kind, _, index = text.partition(":")
    if kind not in ("cpu", "cuda") or (index and (kind == "cpu" or not index.isdigit())):
        raise argparse.ArgumentTypeError(f"expected cpu, cuda or cuda:N, got {text!r}")
    if kind == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise argparse.ArgumentTypeError(f"{text}: CUDA is not available on this machine")
    return text
