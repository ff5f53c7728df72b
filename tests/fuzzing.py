"""What the fuzz tests share: hypothesis settings sized for a 2-core CI machine, and the rule
every loader keeps: a valid result, or a ValueError whose message is one line (never another
exception, never a hang: each example has a deadline).

NEUROJOULE_FUZZ_SCALE=20 (say) runs twenty times the examples, freshly drawn, for a longer
hunt by hand; by default the examples are the same in every run (derandomized), so CI never
fails on a draw it did not make before.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections import Counter
from collections.abc import Callable

from hypothesis import HealthCheck, settings

SCALE = int(os.environ.get("NEUROJOULE_FUZZ_SCALE", "1"))


def fuzz_settings(max_examples: int, deadline_ms: int = 5000) -> settings:
    """`max_examples` (times SCALE) examples, each under `deadline_ms`: a guard against hangs
    that leaves room for a busy 2-core machine."""
    return settings(
        max_examples=max_examples * SCALE,
        deadline=deadline_ms,
        derandomize=SCALE == 1,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


def check_message(error: BaseException, named: tuple[str, ...] = ()) -> str:
    """The error's message: one line, of a readable length, holding each of `named` (a file
    name, an option)."""
    # a UnicodeDecodeError or json's JSONDecodeError is a ValueError too, but says nothing
    # of which file or option broke
    assert not isinstance(error, UnicodeError), repr(error)
    message = str(error)
    assert message and "\n" not in message and "\r" not in message, repr(message)
    assert len(message) < 1000, f"{len(message)} characters: {message[:200]!r}..."
    for name in named:
        assert name in message, (name, message)
    return message


class Outcomes:
    """Counts what the code under test did with the generated inputs, so a test can show its
    strategy reached both sides: inputs refused with a one-line ValueError, and results."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def run(self, call: Callable[[], object], *named: str) -> tuple[bool, object]:
        """(True, result) or (False, the ValueError); any other exception propagates, and the
        message must be one line holding each of `named`."""
        try:
            result = call()
        except ValueError as error:
            check_message(error, named)
            self.counts["refused"] += 1
            return False, error
        self.counts["accepted"] += 1
        return True, result

    def assert_saw(self, accepted: int, refused: int) -> None:
        assert self.counts["accepted"] >= accepted, self.counts
        assert self.counts["refused"] >= refused, self.counts


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """main(argv) with its output captured: (status, stdout, stderr). A SystemExit (argparse's
    one-line errors) counts as its status."""
    from neurojoule.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = main(argv)
        except SystemExit as exit_:
            status = exit_.code
    return status, out.getvalue(), err.getvalue()


def check_cli_outcome(status: int, out: str, err: str, command: str) -> None:
    """0, or 2 with one line on stderr naming the command (`neurojoule <command>: error: `)."""
    assert status in (0, 2), (status, err)
    if status == 2:
        assert out == "" and err.count("\n") == 1, err
        assert err.startswith(f"neurojoule {command}: error: "), err
