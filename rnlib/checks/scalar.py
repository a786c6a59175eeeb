"""The protocol of the checkers whose answer is a value (a number, a list of sizes, a tensor):
the expected value, and the known mistakes as data, each with what it would give, what it
means and a hint. :func:`diagnose` applies the one tolerance policy (:mod:`.tolerance`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .report import fail
from .tolerance import RTOL, agrees, distance, show


@dataclass(frozen=True)
class Mistake:
    """A known wrong answer: the value it gives (or a function of no argument that computes
    it), what it means, and a hint."""

    gives: Any
    what: str
    hint: str

    def value(self) -> Any:
        return self.gives() if callable(self.gives) else self.gives


def number(component: str, value: Any, what: str = "a number") -> float:
    """The student's result as a float, or a failure that says what it returned."""
    try:
        return float(value)
    except (TypeError, ValueError):
        fail(component, f"it returns {type(value).__name__}, not {what}",
             "end the function with return <the value>")


def _shown(got: Any, expected: Any) -> str:
    numbers = (int, float)
    if isinstance(got, numbers) and isinstance(expected, numbers):
        mine, theirs = show(float(got), float(expected))
        return f"you give {mine}, expected {theirs}"
    return f"you give {got!r}, expected {expected!r}"


def diagnose(component: str, got: Any, expected: Any, rule: str, *,
             mistakes: Sequence[Mistake] = (), context: str | None = None, scale: float = 0.0,
             otherwise: str | None = None) -> None:
    """Return when ``got`` agrees with ``expected``. Else fail with the mistake whose value is
    nearest to ``got``, if it agrees (two mistakes can give values closer than the tolerance),
    else with ``otherwise`` (default: both values) and ``rule``."""
    if agrees(got, expected, scale):
        return
    nearest = min(((distance(got, m.value(), scale), i) for i, m in enumerate(mistakes)),
                  default=(math.inf, -1))
    if nearest[0] <= RTOL:
        mistake = mistakes[nearest[1]]
        fail(component, mistake.what, mistake.hint, context)
    fail(component, otherwise or _shown(got, expected), rule, context)

