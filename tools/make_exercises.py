"""Generate the exercise notebooks in notebooks/ from the solved ones in solutions/.

Every region between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` becomes
``raise NotImplementedError("Exercise N.M: ...")``, with the text of the nearest
``# Exercise N.M: ...`` comment above it; outputs, saved widget state, execution counts and
nbval's output markers are removed.

    python tools/make_exercises.py            # write notebooks/
    python tools/make_exercises.py --check    # exit 1 if notebooks/ is out of date
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
CHECK_OUTPUT = "# NBVAL_CHECK_OUTPUT"  # compares a solution's checker output; blank in exercises
EXERCISE = re.compile(r"#\s*(Exercise \d+\.\d+:.*)$")


def strip_solutions(source: str, where: str) -> str:
    """Replace each solution region of a cell's source by a stub naming its exercise."""
    out: list[str] = []
    exercise, inside = None, False
    for line in source.splitlines():
        stripped = line.strip()
        found = EXERCISE.search(stripped)
        if found and not inside:
            exercise = found.group(1).strip()
        if stripped == BEGIN:
            if exercise is None:
                raise ValueError(f"{where}: a solution region without an '# Exercise N.M: ...' "
                                 f"comment above it")
            indent = line[: len(line) - len(line.lstrip())]
            out.append(f"{indent}raise NotImplementedError({exercise!r})")
            inside = True
        elif stripped == END:
            inside = False
        elif not inside and stripped != CHECK_OUTPUT:
            out.append(line)
    if inside:
        raise ValueError(f"{where}: {BEGIN} without {END}")
    return "\n".join(out)


def exercise_notebook(solution: nbformat.NotebookNode, name: str) -> nbformat.NotebookNode:
    nb = nbformat.from_dict(solution)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            cell.source = strip_solutions(cell.source, f"{name} cell {i}")
            cell.outputs, cell.execution_count = [], None
        cell.get("metadata", {}).pop("execution", None)
    nb.metadata.pop("widgets", None)  # the widgets' saved state belongs to the dropped outputs
    return nb


def render(path: Path) -> str:
    nb = exercise_notebook(nbformat.read(path, as_version=4), path.name)
    return nbformat.writes(nb) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="only report stale notebooks")
    args = parser.parse_args()
    stale = []
    for path in sorted((ROOT / "solutions").glob("*.ipynb")):
        target = ROOT / "notebooks" / path.name
        text = render(path)
        if not target.exists() or target.read_text() != text:
            stale.append(target.name)
            if not args.check:
                target.parent.mkdir(exist_ok=True)
                target.write_text(text)
    if args.check and stale:
        print("out of date: " + ", ".join(stale) + "; run python tools/make_exercises.py")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
