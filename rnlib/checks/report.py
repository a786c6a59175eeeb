"""How a check reports: its error classes, a failure as one message with a hint, and the line
that says it passed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NoReturn

Explanation = tuple[str, str]  # (what is wrong, hint)


class ExerciseError(AssertionError):
    """A check failed; the message says what is wrong and how to fix it."""


class UsesLibraryError(ExerciseError):
    """The solution runs rnlib's implementation of the exercise (or torch's, where a torch helper
    does the exercise) instead of its own: a verdict of its own, never "passed"."""


def error(component: str, what: str, hint: str, context: str | None = None,
          kind: type[ExerciseError] = ExerciseError) -> ExerciseError:
    where = f"\n  ({context})" if context else ""
    return kind(f"{component}: {what}{where}\nHint: {hint}")


def fail(component: str, what: str, hint: str, context: str | None = None) -> NoReturn:
    raise error(component, what, hint, context)


def passed(component: str, notes: Sequence[str] = ()) -> None:
    for note in sorted(set(notes)):
        print(f"{component}: note: {note}")
    print(f"{component}: all checks passed.")


def hw(shape: Sequence[int]) -> str:
    """The last two sides of a shape as "HxW"."""
    return "x".join(str(int(s)) for s in shape[-2:])
