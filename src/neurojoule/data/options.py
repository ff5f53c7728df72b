"""Checks of values that users give (YAML configs, ``--set task_options.x=...``, keyword
arguments): each wrong value becomes a one-line ValueError naming the option, the expected
type and range, and what came."""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from typing import Any

SEED_MAX = 2**32 - 1  # numpy and scikit-learn take seeds in [0, 2**32)
MAX_SEQ_LEN = 2**22  # tokens or steps per sequence: far beyond LRA's 16384, below a crash


def clipped(value: Any, limit: int = 60) -> str:
    """`value`'s repr on one line, cut to about `limit` characters."""
    text = " ".join(repr(value).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def shown(value: Any, limit: int = 60) -> str:
    """`value`'s repr as `clipped` gives it, with its type."""
    return f"{clipped(value, limit)} ({type(value).__name__})"


def one_line(text: object, limit: int = 200) -> str:
    """Another library's message (an error's, say) flattened to one line and cut."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


class Rejected(Exception):
    """Raised by an option's converter when the value does not fit."""


class Option:
    """An expected kind of value: `expected` says what fits, `convert` returns the value to
    use or raises Rejected."""

    def __init__(self, expected: str, convert: Callable[[Any], Any]) -> None:
        self.expected = expected
        self.convert = convert

    def __call__(self, name: str, value: Any) -> Any:
        try:
            return self.convert(value)
        except Rejected:
            raise ValueError(f"{name} must be {self.expected}, got {shown(value)}") from None


def _is_integer(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def integer(minimum: int | None = None, maximum: int | None = None, none: bool = False) -> Option:
    """An int (bool refused) in [minimum, maximum]; None too when `none`."""
    bounds = []
    if minimum is not None:
        bounds.append(f">= {minimum}")
    if maximum is not None:
        bounds.append(f"<= {maximum}")
    expected = "an integer" + (" " + " and ".join(bounds) if bounds else "")
    expected += " or null" if none else ""

    def convert(value: Any) -> int | None:
        if value is None and none:
            return None
        if not _is_integer(value):
            raise Rejected
        value = int(value)
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            raise Rejected
        return value

    return Option(expected, convert)


def fraction() -> Option:
    """A finite number strictly between 0 and 1."""

    def convert(value: Any) -> float:
        if not _is_real(value) or not 0.0 < float(value) < 1.0:
            raise Rejected
        return float(value)

    return Option("a number strictly between 0 and 1", convert)


def boolean() -> Option:
    def convert(value: Any) -> bool:
        if not isinstance(value, bool):
            raise Rejected
        return value

    return Option("true or false", convert)


def choice(values: Sequence[Any]) -> Option:
    def convert(value: Any) -> Any:
        # type and value both, so that 32.0 or True do not pass for 32 or 1
        if not any(type(value) is type(v) and value == v for v in values):
            raise Rejected
        return value

    return Option(f"one of {list(values)}", convert)


def mean_std(channels: int = 1) -> Option:
    """null, or a pair [mean, std] of finite numbers with std > 0; with `channels` > 1 each
    may also be a list of one number per channel. Returns (mean, std) as floats or tuples."""
    per_channel = f" (each a number or a list of {channels})" if channels > 1 else ""
    expected = f"null or a pair [mean, std] of finite numbers{per_channel} with std > 0"

    def values(part: Any) -> float | tuple[float, ...]:
        if channels > 1 and isinstance(part, (list, tuple)):
            if len(part) != channels:
                raise Rejected
            return tuple(number(v) for v in part)
        return number(part)

    def number(v: Any) -> float:
        if not _is_real(v) or not math.isfinite(float(v)):
            raise Rejected
        return float(v)

    def convert(value: Any) -> tuple | None:
        if value is None:
            return None
        if not isinstance(value, (list, tuple)) or len(value) != 2:
            raise Rejected
        mean, std = values(value[0]), values(value[1])
        if min(std if isinstance(std, tuple) else (std,)) <= 0.0:
            raise Rejected
        return mean, std

    return Option(expected, convert)


def check_mean_std(normalize: Any, where: str, channels: int = 1) -> tuple | None:
    """`normalize` of a dataset checked as `mean_std(channels)` describes."""
    return mean_std(channels)(where, normalize)


def check_seq_len(value: Any, where: str) -> int:
    return integer(1, MAX_SEQ_LEN)(where, value)
