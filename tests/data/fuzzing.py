"""What the fuzz tests share: hypothesis settings sized for CI, and the rule every loader
must keep: give a result or raise a ValueError whose message is one line.

NEUROJOULE_FUZZ_SCALE=20 (say) runs twenty times the examples, freshly drawn, for a longer
hunt by hand; by default the examples are the same in every run (derandomized), so CI never
fails on a draw it did not make before.
"""

from __future__ import annotations

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


class Outcomes:
    """Tallies what a loader did with generated inputs, so that a test can show its strategy
    produced both kinds (broken input that was refused, and input that loaded)."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def run(self, call: Callable[[], object], *named: str) -> tuple[bool, object]:
        """(True, result) or (False, the ValueError); any other exception propagates, and the
        message must be one line holding each of `named` (a file name, an option)."""
        try:
            result = call()
        except ValueError as error:
            check_message(error, named)
            self.counts["rejected"] += 1
            return False, error
        self.counts["accepted"] += 1
        return True, result

    def assert_saw(self, accepted: int, rejected: int) -> None:
        assert self.counts["accepted"] >= accepted, self.counts
        assert self.counts["rejected"] >= rejected, self.counts


def check_message(error: ValueError, named: tuple[str, ...] = ()) -> None:
    # a UnicodeDecodeError or json's JSONDecodeError is a ValueError too, but says nothing
    # of which file or option broke
    assert not isinstance(error, UnicodeError), repr(error)
    message = str(error)
    assert message and "\n" not in message and "\r" not in message, repr(message)
    assert len(message) < 1000, f"{len(message)} characters: {message[:200]!r}..."
    for name in named:
        assert name in message, (name, message)
