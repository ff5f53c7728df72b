"""neurojoule <command>: parses arguments and calls the library, one module per command.

Every mistake a user can make ends in one line on stderr and a non-zero exit status: a bad
argument or value prints `neurojoule <command>: error: <message>` and exits 2; Ctrl-C prints
`neurojoule <command>: interrupted` (with what the run saved) and exits 130; output cut short
by a closed pipe (`neurojoule models | head -1`) ends quietly with status 1.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from neurojoule.allocator import keep_freed_memory
from neurojoule.cli import (
    bench,
    configs,
    demo,
    evolve,
    export,
    generate,
    models,
    sdn,
    search,
    supernet,
    train,
    version,
)
from neurojoule.cli import eval as evaluate
from neurojoule.cli.parsing import DefaultsHelp, OneLineParser, add_commands, one_line

COMMANDS = (
    demo.COMMAND,
    train.COMMAND,
    evaluate.COMMAND,
    export.COMMAND,
    generate.COMMAND,
    models.COMMAND,
    configs.COMMAND,
    sdn.COMMAND,
    supernet.COMMAND,
    search.COMMAND,
    evolve.COMMAND,
    bench.COMMAND,
    version.COMMAND,
)


def build_parser(argv: Sequence[str] | None = None) -> OneLineParser:
    """The parser of the whole command line. Given the `argv` to parse, only the command it
    names gets its arguments (and imports what their defaults come from)."""
    parser = OneLineParser(
        prog="neurojoule",
        description="Build, train, search and measure energy-efficient spiking neural networks.",
        formatter_class=DefaultsHelp,
    )
    add_commands(parser, COMMANDS, argv, "command", "command")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    prog = "neurojoule"
    try:
        args = build_parser(argv).parse_args(argv)
        prog = args.prog  # "neurojoule train", "neurojoule sdn eval", ...
        keep_freed_memory()
        status = args.run(args)
        sys.stdout.flush()  # here, where a closed pipe can still be handled
        return status
    except BrokenPipeError:
        _discard_stdout()
        return 1
    except KeyboardInterrupt as interrupt:
        saved = one_line(interrupt)
        print(f"{prog}: interrupted" + (f": {saved}" if saved else ""), file=sys.stderr)
        return 130
    except _user_errors() as error:
        print(f"{prog}: error: {one_line(error)}", file=sys.stderr)
        return 2


def _user_errors() -> tuple[type[BaseException], ...]:
    """What a wrong value, file or setting raises: ValueError by the project's rule, OSError
    (a file that cannot be read or written, a full disk), and Lightning's error for a setting
    this machine cannot run (an accelerator it lacks)."""
    errors: tuple[type[BaseException], ...] = (ValueError, OSError)
    lightning = sys.modules.get("lightning.fabric.utilities.exceptions")
    if lightning is not None:
        errors += (lightning.MisconfigurationException,)
    return errors


def _discard_stdout() -> None:
    """The reader of stdout went away (`| head`): send what is left to /dev/null, so that
    Python's flush at exit does not fail again (as Python's documentation on SIGPIPE does)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (AttributeError, OSError, ValueError):  # a stdout without a file descriptor
        pass
