"""Grading: the course's checkers run on what a notebook defines, exercise by exercise.

In a notebook (its last cell), the verdict for each of its exercises:

>>> import rnlib.grade
>>> rnlib.grade.print_summary(globals(), ["3.1"])

For teachers, ``rnlib grade NOTEBOOK...`` (:func:`grade_notebooks`) grades submitted notebooks
and prints a table per notebook, and writes JSON or CSV for a gradebook as each notebook
finishes. ``--seed`` runs hidden variants of the checks.

How a submission is graded, and why (the machinery is in :mod:`rnlib.grading`):

- Every submission is read into memory before any kernel starts, and each runs from a private
  copy in its own temporary folder: a notebook that deletes or rewrites the files around it
  changes nothing that is graded, and the submissions' folder is not the kernel's.
- The exercises come from the course's list for the notebook (:data:`EXERCISES`), named by the
  teacher (``--notebook``), by the id in the notebook's metadata, or by its file name; markers
  in the student's cells do not count. A missing exercise is "not attempted".
- The checker runs in a fresh kernel in which the grader's code runs first: it imports the
  checkers, keeps its own reference to each, and records the functions and classes of rnlib,
  torch, numpy and Python's builtins. The student's cells then run in order, up to the last
  one that defines an exercise (cells after it, such as the summary cell, never run), and each
  exercise is checked right after the cell that defines it. Before each check the grader puts
  back whatever the notebook changed in those modules (``torch.allclose``, ``rnlib.checks``,
  ``rnlib.grade._grade``, an entry of ``EXERCISES``...) and resets torch's global state (grad
  and inference mode, default dtype, function and dispatch modes, global module hooks); a
  change made while the check runs fails the exercise. This design keeps the checkers as they
  are (they inspect the student's modules as they run, which an out-of-process checker fed
  with outputs could not) and costs one kernel per notebook.
- Each cell and each check has a time limit, and so has each notebook. A cell past its limit is
  interrupted; one that ignores the interrupt has its kernel killed. A kernel that dies is
  restarted for the exercises still to check, without the cell that stopped it. Output is
  thrown away as it comes.

What it cannot stop: the student's code runs in the kernel that checks it, with the teacher's
permissions. Code written to attack the grader itself (replacing the guard's own functions,
IPython's machinery or the verdict file, a tensor type that lies to comparisons, ctypes) can
still forge a verdict, and code that writes to absolute paths can change files outside its
folder. For those, read the code of a surprising result, and grade as a user that can read
only the submissions, in a container.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import redirect_stdout
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import checks
from .seeding import seeded

if TYPE_CHECKING:
    from .grading.runner import Limits

__all__ = ["EXERCISES", "Exercise", "Result", "Report", "summary", "format_summary",
           "print_summary", "grade_notebooks", "format_reports", "write_json", "write_csv",
           "exercises_in", "ungraded"]

# seconds; grading stops after the last cell that defines an exercise, so no training runs
DEFAULT_CELL_TIMEOUT = 300
DEFAULT_NOTEBOOK_TIMEOUT = 900
MESSAGE_LIMIT = 4000  # characters of a message kept (a check that prints megabytes)


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
USES_LIBRARY = "uses rnlib's implementation"
NOT_GRADED = "not graded"  # the grader could not check it: the notebook ran out of time
VERDICTS = (PASSED, FAILED, NOT_ATTEMPTED, USES_LIBRARY, NOT_GRADED)


@dataclass
class Result:
    """The verdict on one exercise, with the checker's message."""

    exercise: str
    name: str
    status: str  # PASSED, FAILED, NOT_ATTEMPTED, USES_LIBRARY or NOT_GRADED
    message: str


def _verdict(err: checks.ExerciseError) -> str:
    """FAILED, or USES_LIBRARY for an error that says so (its ``verdict`` or its class)."""
    if getattr(err, "verdict", None) == USES_LIBRARY or "library" in type(err).__name__.lower():
        return USES_LIBRARY
    return FAILED


def _grade(exercise: Exercise, namespace: Mapping[str, Any], seed: int | None) -> Result:
    def result(status: str, message: str) -> Result:
        message = message.strip()
        if len(message) > MESSAGE_LIMIT:
            message = f"{message[:MESSAGE_LIMIT]}... ({len(message) - MESSAGE_LIMIT} more " \
                      "characters)"
        return Result(exercise.id, exercise.name, status, message)

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
        return result(_verdict(err), str(err))
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


def exercises_in(notebook: Any, path: Path, name: str | None = None) -> list[str]:
    """The exercises of a submission: those of the course notebook named ``name``, else the one
    its metadata or its file name names (ValueError when none). Its cells do not count."""
    from .grading.submission import identify

    if name is None:
        name = identify(notebook, path, list(dict.fromkeys(e.notebook for e in EXERCISES.values())))
    return [e.id for e in EXERCISES.values() if e.notebook == name]


def _read_all(paths: Sequence[Path]) -> list[bytes | str]:
    """Each submission's bytes, or why it cannot be read: all read before any kernel starts."""
    contents: list[bytes | str] = []
    for path in paths:
        try:
            contents.append(path.read_bytes() if path.is_file() else
                            "no such file" if not path.exists() else "not a file")
        except OSError as err:
            contents.append(f"cannot be read ({err.strerror or err})")
    return contents


def _grade_one(path: Path, content: bytes | str, notebook: str | None, seed: int | None,
               limits: Limits) -> Report:
    from .grading.runner import GradingError, grade_cells
    from .grading.submission import read

    if isinstance(content, str):
        return Report(str(path), error=content)
    try:
        nb = read(content)
        exercises = [EXERCISES[e] for e in exercises_in(nb, path, notebook)]
    except ValueError as err:
        return Report(str(path), error=str(err))
    sources = [cell.source for cell in nb.cells if cell.cell_type == "code"]
    with tempfile.TemporaryDirectory(prefix="rnlib-grade-") as folder, \
            tempfile.TemporaryDirectory(prefix="rnlib-verdicts-") as verdicts:
        (Path(folder) / path.name).write_bytes(content)
        try:
            return Report(str(path), grade_cells(sources, exercises, Path(folder),
                                                 Path(verdicts), seed, limits))
        except GradingError as err:
            return Report(str(path), error=str(err))


def grade_notebooks(paths: Iterable[str | Path], *, cell_timeout: float = DEFAULT_CELL_TIMEOUT,
                    notebook_timeout: float = DEFAULT_NOTEBOOK_TIMEOUT, seed: int | None = None,
                    notebook: str | None = None, progress: bool = True,
                    on_report: Callable[[Report], None] | None = None) -> list[Report]:
    """Grade each submission in a fresh kernel (see the module's docstring), with at most
    ``cell_timeout`` seconds per cell or check and ``notebook_timeout`` per notebook;
    ``notebook`` names the course notebook for all of them (default: each one's metadata or
    file name). ``on_report`` gets each notebook's report as soon as it is done. The kernel
    inherits the environment (RNLIB_BUDGET_SCALE shortens training)."""
    from .grading.runner import Limits

    paths = [Path(p) for p in paths]
    limits = Limits(cell_timeout, notebook_timeout)
    reports = []
    for i, (path, content) in enumerate(zip(paths, _read_all(paths)), 1):
        if progress:
            print(f"grading {path} ({i} of {len(paths)})", file=sys.stderr)
        reports.append(_grade_one(path, content, notebook, seed, limits))
        if on_report is not None:
            on_report(reports[-1])
    return reports


def ungraded(reports: Sequence[Report]) -> list[Report]:
    """The reports of notebooks that could not be graded, wholly or in part."""
    return [r for r in reports if r.error or any(x.status == NOT_GRADED for x in r.results)]


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
    _replace(path, json.dumps(data, indent=2) + "\n")


def write_csv(reports: Sequence[Report], path: str | Path) -> None:
    """One row per notebook and exercise; a notebook that could not be graded gets one row
    with status "error"."""
    text = io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow(["notebook", "exercise", "defines", "status", "message"])
    for r in reports:
        if r.error:
            writer.writerow([r.path, "", "", "error", r.error])
        writer.writerows([r.path, x.exercise, x.name, x.status, x.message] for x in r.results)
    _replace(path, text.getvalue())


def _replace(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` whole or not at all (a file beside it, then renamed)."""
    partial = Path(f"{path}.partial")
    with open(partial, "w", newline="") as f:
        f.write(text)
    os.replace(partial, path)

