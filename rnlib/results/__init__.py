"""Recorded results that travel with the package, for notebooks in Colab as on a clone:
``reference()`` is the reference comparison of ``benchmarks/reference.py`` (all contenders,
three seeds, 1000 steps, with learning curves), as :class:`rnlib.compare.Row` objects."""

from __future__ import annotations

import json
from pathlib import Path

from ..compare import Row
from ..recorded_paths import resolve_recorded

__all__ = ["REFERENCE", "reference", "load_rows"]

REFERENCE = Path(__file__).resolve().parent / "reference.json"  # benchmarks/reference.py writes it


def load_rows(path: str | Path) -> list[Row]:
    """Rows written by ``rnlib compare`` (its JSON file), their runs' paths resolved."""
    rows = [Row(**row) for row in json.loads(Path(path).read_text())]
    for row in rows:
        row.checkpoints = [str(resolve_recorded(c, path)) for c in row.checkpoints]
    return rows


def reference() -> list[Row]:
    """The reference comparison recorded by ``python benchmarks/reference.py``."""
    if not REFERENCE.exists():
        raise FileNotFoundError(f"{REFERENCE} is missing: run python benchmarks/reference.py")
    return load_rows(REFERENCE)
