"""Grading: the course's checkers run on what a notebook defines, exercise by exercise.

In a notebook (its last cell), the verdict for each of its exercises:

>>> import rnlib.grade
>>> rnlib.grade.print_summary(globals(), ["3.1"])

For teachers, ``rnlib grade NOTEBOOK...`` (:func:`grade_notebooks`) runs each submitted notebook
in a fresh kernel, with a time limit per cell, then the same summary; it prints a table per
notebook and writes JSON or CSV for a gradebook. A file that is not a readable notebook is
reported, and the others are still graded. ``--seed`` runs hidden variants of the checks.
"""

from __future__ import annotations

import csv
import io
import json
import re
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import redirect_stdout
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import checks
from .seeding import seeded

__all__ = ["EXERCISES", "Exercise", "Result", "Report", "summary", "format_summary",
           "print_summary", "grade_notebooks", "format_reports", "write_json", "write_csv"]

DEFAULT_CELL_TIMEOUT = 1800  # seconds: notebooks 08 and 09 train for minutes in one cell


@dataclass(frozen=True)
class Exercise:
    """An exercise of the course: where it is, what it defines, and its checker."""

    id: str
    notebook: str  # the stem of the course notebook that holds it
    name: str  # the class or function it defines in the student's namespace
    check: Callable[..., None]  # check(obj, seed=...) raises ExerciseError or prints success


def _check_cascade(fn: Callable, *, seed: int | None = None) -> None:
    """Exercise 6.2 is checked on the decoder that notebook 06 builds."""
    from .models.refinenet import RefineNetDecoder

    with seeded(checks.DEFAULT_SEED if seed is None else seed):
        decoder = RefineNetDecoder((64, 128, 256, 512), num_classes=5, widths=(64, 32))
    checks.check_decoder(fn, decoder, seed=seed)


EXERCISES: dict[str, Exercise] = {e.id: e for e in [
    Exercise("1.1", "01_data_and_metrics", "pixel_accuracy", checks.check_pixel_accuracy),
    Exercise("1.2", "01_data_and_metrics", "mean_iou", checks.check_mean_iou),
    Exercise("2.1", "02_why_downsampling_hurts", "stage_sizes", checks.check_stage_sizes),
    Exercise("2.2", "02_why_downsampling_hurts", "segmentation_loss",
             checks.check_segmentation_loss),
    Exercise("3.1", "03_residual_conv_unit", "RCU", checks.check_rcu),
    Exercise("4.1", "04_multi_resolution_fusion", "MultiResolutionFusion", checks.check_fusion),
    Exercise("5.1", "05_chained_residual_pooling", "ChainedResidualPooling", checks.check_crp),
    Exercise("6.1", "06_refinenet_cascade", "RefineNetBlock", checks.check_refinenet_block),
    Exercise("6.2", "06_refinenet_cascade", "cascade_forward", _check_cascade),
    Exercise("7.1", "07_training", "poly_lr", checks.check_poly_lr),
    Exercise("8.1", "08_baselines_compared", "relative_cost", checks.check_relative_cost),
    Exercise("9.1", "09_ablations", "crp_receptive_field", checks.check_crp_receptive_field),
    Exercise("10.1", "10_light_weight_and_deployment", "fuse_conv_bn", checks.check_fuse_conv_bn),
]}

PASSED, FAILED, NOT_ATTEMPTED = "passed", "failed", "not attempted"


@dataclass
class Result:
    """The verdict on one exercise, with the checker's message."""

    exercise: str
    name: str
    status: str  # PASSED, FAILED or NOT_ATTEMPTED
    message: str


def _grade(exercise: Exercise, namespace: Mapping[str, Any], seed: int | None) -> Result:
    def result(status: str, message: str) -> Result:
        return Result(exercise.id, exercise.name, status, message.strip())

    if exercise.name not in namespace:
        return result(FAILED, f"{exercise.name} is not defined: run its cell, and fix the "
                              "error it shows")
    printed = io.StringIO()
    try:
        with redirect_stdout(printed):
            exercise.check(namespace[exercise.name], seed=seed)
    except NotImplementedError as err:
        return result(NOT_ATTEMPTED, str(err) or f"{exercise.name} is not implemented")
    except checks.ExerciseError as err:
        return result(FAILED, str(err))
    except Exception as err:  # a checker never raises otherwise: say what happened
        return result(FAILED, f"checking it raised {type(err).__name__}: {err}")
    return result(PASSED, printed.getvalue())


def summary(namespace: Mapping[str, Any], exercises: Iterable[str],
            seed: int | None = None) -> list[Result]:
    """Run the checkers of ``exercises`` (ids such as "3.1") on the objects in ``namespace``
    (a notebook's ``globals()``). A missing name fails; a stub is "not attempted"."""
    return [_grade(EXERCISES[e], namespace, seed) for e in exercises]


def format_summary(results: Sequence[Result]) -> str:
    """The table that ``rnlib grade`` and the notebooks' last cells print."""
    if not results:
        return "no exercises"
    rows = [("exercise", "defines", "verdict", "message")]
    rows += [(r.exercise, r.name, r.status, r.message) for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = []
    for row in rows:
        first, *more = row[3].splitlines() or [""]
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths)) + "  " + first)
        lines += [" " * (sum(widths) + 6) + line for line in more]
    passed = sum(r.status == PASSED for r in results)
    lines.append(f"{passed} of {len(results)} exercises passed")
    return "\n".join(lines)


def print_summary(namespace: Mapping[str, Any], exercises: Iterable[str],
                  seed: int | None = None) -> None:
    """Print the verdict on each exercise: the last cell of each course notebook."""
    print(format_summary(summary(namespace, exercises, seed)))


def _grade_into(namespace: Mapping[str, Any], exercises: Sequence[str], path: str,
                seed: int | None) -> None:
    """Inside the grading kernel: write the results so far after each exercise, so that a
    checker stopped by the time limit still leaves the others' verdicts."""
    results = []
    for e in exercises:
        results.append(asdict(_grade(EXERCISES[e], namespace, seed)))
        Path(path).write_text(json.dumps(results))


# -- grading notebooks ------------------------------------------------------------------------
@dataclass
class Report:
    """A graded notebook: its results, or why it could not be graded."""

    path: str
    results: list[Result] = field(default_factory=list)
    error: str | None = None

    @property
    def passed(self) -> int:
        return sum(r.status == PASSED for r in self.results)


def exercises_in(notebook: Any, path: Path) -> list[str]:
    """The exercises of a notebook: its "Exercise N.M" markers, and those of the course
    notebook it is named after."""
    text = "\n".join(str(cell.get("source", "")) for cell in notebook.cells)
    found = set(re.findall(r"Exercise (\d+\.\d+)", text))
    found |= {e.id for e in EXERCISES.values() if path.stem.startswith(e.notebook)}
    return [e for e in EXERCISES if e in found]


def _read(path: Path) -> Any:
    """The notebook at ``path``; ValueError saying why when it is not one."""
    import nbformat

    if not path.is_file():
        raise ValueError("no such file" if not path.exists() else "not a file")
    if path.stat().st_size == 0:
        raise ValueError("the file is empty")
    try:
        notebook = nbformat.read(path, as_version=4)
        nbformat.validate(notebook)
    except Exception as err:
        reason = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise ValueError(f"not a Jupyter notebook ({reason})") from None
    return notebook


def _execute(notebook: Any, path: Path, exercises: list[str], cell_timeout: float,
             seed: int | None) -> list[Result]:
    import nbformat
    from nbclient import NotebookClient

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "results.json"
        notebook.cells.append(nbformat.v4.new_code_cell(
            "import rnlib.grade as _rnlib_grade\n"
            f"_rnlib_grade._grade_into(globals(), {exercises!r}, {str(out)!r}, seed={seed!r})"))
        client = NotebookClient(notebook, timeout=int(cell_timeout), kernel_name="python3",
                                allow_errors=True, interrupt_on_timeout=True,
                                resources={"metadata": {"path": str(path.parent.resolve())}})
        stopped = None
        try:
            client.execute()
        except Exception as err:  # the kernel died, or did not start
            stopped = f"{type(err).__name__}: {str(err).strip().splitlines()[-1][:200]}"
        results = [Result(**r) for r in json.loads(out.read_text())] if out.exists() else []
    done = {r.exercise for r in results}
    reason = stopped or f"its checker did not finish within {cell_timeout:g} s"
    return results + [Result(e, EXERCISES[e].name, FAILED, f"not graded: {reason}")
                      for e in exercises if e not in done]


def grade_notebooks(paths: Iterable[str | Path], *, cell_timeout: float = DEFAULT_CELL_TIMEOUT,
                    seed: int | None = None, progress: bool = True) -> list[Report]:
    """Run each notebook top to bottom in a fresh kernel (errors in cells do not stop it; a
    cell that runs past ``cell_timeout`` seconds is interrupted), then check its exercises.
    The kernel inherits the environment (RNLIB_BUDGET_SCALE shortens training)."""
    reports = []
    paths = [Path(p) for p in paths]
    for i, path in enumerate(paths, 1):
        if progress:
            print(f"grading {path} ({i} of {len(paths)})", file=sys.stderr)
        try:
            notebook = _read(path)
        except ValueError as err:
            reports.append(Report(str(path), error=str(err)))
            continue
        exercises = exercises_in(notebook, path)
        if not exercises:
            reports.append(Report(str(path), error="no exercise of the course in it"))
            continue
        reports.append(Report(str(path), _execute(notebook, path, exercises, cell_timeout, seed)))
    return reports


def format_reports(reports: Sequence[Report]) -> str:
    """One table per notebook, as ``rnlib grade`` prints them."""
    parts = []
    for r in reports:
        if r.error:
            parts.append(f"{r.path}: not graded: {r.error}")
        else:
            parts.append(f"{r.path}\n" + _indent(format_summary(r.results)))
    return "\n\n".join(parts)


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())


def write_json(reports: Sequence[Report], path: str | Path) -> None:
    """All reports, with every message in full."""
    data = [{"notebook": r.path, "error": r.error, "passed": r.passed, "total": len(r.results),
             "exercises": [asdict(x) for x in r.results]} for r in reports]
    Path(path).write_text(json.dumps(data, indent=2) + "\n")


def write_csv(reports: Sequence[Report], path: str | Path) -> None:
    """One row per notebook and exercise; a notebook that could not be graded gets one row
    with status "error"."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["notebook", "exercise", "defines", "status", "message"])
        for r in reports:
            if r.error:
                writer.writerow([r.path, "", "", "error", r.error])
            writer.writerows([r.path, x.exercise, x.name, x.status, x.message] for x in r.results)

