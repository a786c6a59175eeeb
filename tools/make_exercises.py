"""Keep the course notebooks consistent, and generate the exercise notebooks in notebooks/ from
the solved ones in solutions/.

In each solution, the parts that every notebook shares are rewritten from the templates below:
the Colab badge and the "check your work" line of the first cell, the Colab install cell (the
second), the closing cell that prints the verdict on each exercise (notebooks with exercises),
and JupyterLab's kernelspec. The repository they point to is ``REPOSITORY``: a fork changes
that one line.

Then every region between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` becomes
``raise NotImplementedError("Exercise N.M: ...")``, with the text of the nearest
``# Exercise N.M: ...`` comment above it; outputs, saved widget state, execution counts and
nbval's output markers are removed.

Written answers, graded by the teacher: a markdown cell that starts with
``**Written answer N.M**`` holds the model answer in the solution; the exercise notebook gets
``PLACEHOLDER`` in its place. The question itself goes in the markdown cell before it.

    python tools/make_exercises.py                      # rewrite solutions/, write notebooks/
    python tools/make_exercises.py 03_residual_conv_unit.ipynb   # only these
    python tools/make_exercises.py --check              # exit 1 if anything is out of date
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
REPOSITORY = "rnlib/rnlib"  # owner/name on GitHub: Colab badges and install cells point here

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
CHECK_OUTPUT = "# NBVAL_CHECK_OUTPUT"  # compares a solution's checker output; blank in exercises
EXERCISE = re.compile(r"#\s*(Exercise \d+\.\d+:.*)$")
EXERCISE_ID = re.compile(r"Exercise (\d+\.\d+):")
WRITTEN = re.compile(r"\*\*Written answer (\d+\.\d+)\*\*")
PLACEHOLDER = ("**Written answer {id}** (your teacher grades it; a few sentences): "
               "*your answer here*")
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}

BADGE = ("[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
         "(https://colab.research.google.com/github/{repository}/blob/main/notebooks/{name})")
CHECK = ("**Check your work:** each exercise is followed by a checker cell, and the last cell "
         "gives the verdict on every exercise of this notebook (the table that `rnlib grade` "
         "prints for teachers). Outside Colab, `pytest --nbval-lax --nbval-current-env "
         "notebooks/{name}` also runs it top to bottom as a test.")
NO_EXERCISES = ("**Check your setup:** run every cell (in Colab too); the notebooks that follow "
                "end with a verdict on each of their exercises.")
HEADER_LINES = ("[![Open In Colab]", "**Check your work:**", "**Check your setup:**")
INSTALL = "\n".join([
    "# In Colab, install rnlib (Colab's own torch is kept). Elsewhere this cell does nothing.",
    "import sys",
    'if "google.colab" in sys.modules:',
    '    %pip install -q "rnlib @ git+https://github.com/{repository}"',
])
SUMMARY = f"""{CHECK_OUTPUT}
# The verdict on each exercise of this notebook (as `rnlib grade` gives it)
import rnlib.grade
rnlib.grade.print_summary(globals(), {{exercises}})"""


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


def exercises(nb: nbformat.NotebookNode) -> list[str]:
    """The ids of the exercises a notebook holds, in order ("3.1", ...)."""
    found = [m for cell in nb.cells for m in EXERCISE_ID.findall(cell.source)]
    return list(dict.fromkeys(found))


def written_answers(nb: nbformat.NotebookNode) -> list[str]:
    """The ids of the written answers a notebook holds, in order ("3.2", ...)."""
    return [m.group(1) for cell in nb.cells
            if cell.cell_type == "markdown" and (m := WRITTEN.match(cell.source))]


def strip_written_answer(source: str, where: str) -> str:
    """A written answer's placeholder for the model answer in ``source`` (other cells as
    they are)."""
    found = WRITTEN.match(source)
    if not found:
        return source
    if not source[found.end():].strip(" :.\n"):
        raise ValueError(f"{where}: written answer {found.group(1)} has no model answer")
    return PLACEHOLDER.format(id=found.group(1))


def _set_source(cell: nbformat.NotebookNode, source: str) -> None:
    if cell.source != source:
        cell.source = source
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None


def _header(source: str, name: str, has_exercises: bool, where: str) -> str:
    lines = source.splitlines()
    badge = [i for i, line in enumerate(lines) if line.startswith(HEADER_LINES[0])]
    check = [i for i, line in enumerate(lines) if line.startswith(HEADER_LINES[1:])]
    if len(badge) != 1 or len(check) != 1:
        raise ValueError(f"{where}: the first cell needs one Colab badge line and one "
                         f"'**Check your work:**' line")
    lines[badge[0]] = BADGE.format(repository=REPOSITORY, name=name)
    lines[check[0]] = CHECK.format(name=name) if has_exercises else NO_EXERCISES
    return "\n".join(lines)


def course_notebook(solution: nbformat.NotebookNode, name: str) -> nbformat.NotebookNode:
    """The solution with its shared parts rewritten from the templates."""
    nb = nbformat.from_dict(solution)
    ids = exercises(nb)
    _set_source(nb.cells[0], _header(nb.cells[0].source, name, bool(ids), f"{name} cell 0"))
    if nb.cells[1].cell_type != "code":
        raise ValueError(f"{name}: the second cell must be the Colab install cell")
    _set_source(nb.cells[1], INSTALL.format(repository=REPOSITORY))
    if ids:
        summary = SUMMARY.format(exercises=json.dumps(ids))
        if "rnlib.grade.print_summary" not in nb.cells[-1].source:
            nb.cells.append(nbformat.v4.new_code_cell("", id="exercise-summary"))
        _set_source(nb.cells[-1], summary)
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    return nb


def exercise_notebook(solution: nbformat.NotebookNode, name: str) -> nbformat.NotebookNode:
    nb = nbformat.from_dict(solution)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            cell.source = strip_solutions(cell.source, f"{name} cell {i}")
            cell.outputs, cell.execution_count = [], None
        else:
            cell.source = strip_written_answer(cell.source, f"{name} cell {i}")
        cell.get("metadata", {}).pop("execution", None)
    nb.metadata.pop("widgets", None)  # the widgets' saved state belongs to the dropped outputs
    nb.metadata["rnlib"] = {"notebook": Path(name).stem}  # `rnlib grade` knows it by this id
    return nb


def _text(nb: nbformat.NotebookNode) -> str:
    return nbformat.writes(nb) + "\n"


def render_solution(path: Path) -> str:
    """The solution at ``path`` as it should be: its shared parts from the templates."""
    return _text(course_notebook(nbformat.read(path, as_version=4), path.name))


def render(path: Path) -> str:
    """The exercise notebook generated from the solution at ``path``."""
    solution = course_notebook(nbformat.read(path, as_version=4), path.name)
    return _text(exercise_notebook(solution, path.name))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", metavar="NOTEBOOK",
                        help="file names in solutions/ (default: all)")
    parser.add_argument("--check", action="store_true", help="only report what is out of date")
    args = parser.parse_args(argv)
    paths = [ROOT / "solutions" / Path(n).name for n in args.names] or sorted(
        (ROOT / "solutions").glob("*.ipynb"))
    stale = []
    for path in paths:
        solution = course_notebook(nbformat.read(path, as_version=4), path.name)
        exercise = exercise_notebook(solution, path.name)
        for target, nb in [(path, solution), (ROOT / "notebooks" / path.name, exercise)]:
            text = _text(nb)
            if not target.exists() or target.read_text() != text:
                stale.append(f"{target.parent.name}/{target.name}")
                if not args.check:
                    target.parent.mkdir(exist_ok=True)
                    target.write_text(text)
    if args.check and stale:
        print("out of date: " + ", ".join(stale) + "; run python tools/make_exercises.py")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
