"""The "did you mean" of every error about a mistyped name (a model, an option, a backbone,
a config field)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["did_you_mean"]


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """``" Did you mean 'x'?"`` for the choice closest to a mistyped ``word``, else ``""``;
    meant to follow the sentence that names the mistake."""
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" Did you mean {close[0]!r}?" if close else ""
