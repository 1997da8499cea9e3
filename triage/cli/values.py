"""Readers of one option value, from a flag or an environment variable, saying what they expect."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

ValueReader = Callable[[str], T]
"""Turns the raw text of one value into its typed value, or raises :class:`BadValue`."""


class BadValue(argparse.ArgumentTypeError):
    """A raw value a reader refused: argparse prints it for a flag, main() for a variable."""

    def __init__(self, raw: str, problem: str) -> None:
        super().__init__(f"{raw!r} {problem}")
        self.raw = raw
        self.problem = problem


def _expected(kind: str, minimum: float | None, maximum: float | None) -> str:
    if minimum is not None and maximum is not None:
        return f"{kind} from {minimum} to {maximum}"
    if minimum is not None:
        return f"{kind} >= {minimum}"
    if maximum is not None:
        return f"{kind} <= {maximum}"
    return kind


def text(raw: str) -> str:
    return raw


def path(raw: str) -> Path:
    if not raw:
        raise BadValue(raw, "is not a path")
    return Path(raw)


def integer(minimum: int | None = None, maximum: int | None = None) -> ValueReader[int]:
    """An integer, within ``minimum``..``maximum`` where they are given."""
    expected = _expected("an integer", minimum, maximum)

    def read(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise BadValue(raw, "is not an integer") from None
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            raise BadValue(raw, f"is out of range: expected {expected}")
        return value

    return read


def number(minimum: float | None = None, maximum: float | None = None) -> ValueReader[float]:
    """A finite decimal number, within ``minimum``..``maximum`` where they are given."""
    expected = _expected("a number", minimum, maximum)

    def read(raw: str) -> float:
        try:
            value = float(raw)
        except ValueError:
            raise BadValue(raw, "is not a number") from None
        # float() accepts 'nan' and 'inf', which no limit or timeout here can mean.
        if not math.isfinite(value):
            raise BadValue(raw, "is not a finite number")
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            raise BadValue(raw, f"is out of range: expected {expected}")
        return value

    return read


def probability(raw: str) -> float:
    """A number above 0 and at most 1: a precision to reach, say."""
    value = number(0.0, 1.0)(raw)
    if value == 0.0:
        raise BadValue(raw, "is out of range: expected a number above 0 and at most 1")
    return value


PORT = integer(0, 65535)

_TRUE = frozenset({"1", "on", "true", "yes"})
_FALSE = frozenset({"0", "off", "false", "no"})


def switch(raw: str) -> bool:
    """An on/off setting from the environment: 1/on/true/yes or 0/off/false/no."""
    word = raw.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise BadValue(raw, "is not on or off: expected one of 1, on, true, yes, 0, off, false, no")


def token_list(raw: str) -> tuple[str, ...]:
    """Comma-separated bearer tokens; blanks around and between them are dropped."""
    return tuple(token.strip() for token in raw.split(",") if token.strip())
