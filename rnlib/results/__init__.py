"""Recorded results that travel with the package, for notebooks in Colab as on a clone, as
:class:`rnlib.compare.Row` objects: ``reference()`` is the reference comparison of
``benchmarks/reference.py`` (all contenders, three seeds, 1000 steps, with learning curves);
``quick()`` the course's own regime (``--regime quick``: the ``cpu-quick`` preset, three
seeds), the spread that a student's one-seed run is read against."""

from __future__ import annotations

import json
from pathlib import Path

from ..compare import Row
from ..recorded_paths import resolve_recorded

__all__ = ["REFERENCE", "QUICK", "reference", "quick", "load_rows"]

REFERENCE = Path(__file__).resolve().parent / "reference.json"  # benchmarks/reference.py writes it
QUICK = REFERENCE.with_name("quick.json")  # benchmarks/reference.py --regime quick writes it


def load_rows(path: str | Path) -> list[Row]:
    """Rows written by ``rnlib compare`` (its JSON file), their runs' paths resolved."""
    rows = [Row(**row) for row in json.loads(Path(path).read_text())]
    for row in rows:
        row.checkpoints = [str(resolve_recorded(c, path)) for c in row.checkpoints]
    return rows


def _recorded(path: Path, command: str) -> list[Row]:
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run {command}")
    return load_rows(path)


def reference() -> list[Row]:
    """The reference comparison recorded by ``python benchmarks/reference.py``."""
    return _recorded(REFERENCE, "python benchmarks/reference.py")


def quick() -> list[Row]:
    """The course's regime, three seeds, recorded by ``benchmarks/reference.py --regime
    quick``."""
    return _recorded(QUICK, "python benchmarks/reference.py --regime quick")
