"""``rnlib grade``: submitted notebooks run and checked, exercise by exercise."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .. import grade
from ..grade import Report
from .signals import exit_status, sigterm_interrupts


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def _grade_command(args: argparse.Namespace) -> None:
    done: list[Report] = []

    def finished(report: Report) -> None:  # results are out as each notebook finishes
        done.append(report)
        print(("\n" if len(done) > 1 else "") + grade.format_reports([report]), flush=True)
        if args.json:
            grade.write_json(done, args.json)
        if args.csv:
            grade.write_csv(done, args.csv)

    try:
        with sigterm_interrupts():  # SIGTERM stops the grader as Ctrl-C does
            grade.grade_notebooks(args.notebooks, cell_timeout=args.cell_timeout,
                                  notebook_timeout=args.notebook_timeout, seed=args.seed,
                                  notebook=args.notebook, on_report=finished)
    except KeyboardInterrupt as err:
        saved = " and ".join(f for f in (args.json, args.csv) if f)
        print(f"rnlib grade: stopped after {len(done)} of {len(args.notebooks)} notebooks"
              + (f"; their results are in {saved}" if saved else ""), file=sys.stderr)
        raise SystemExit(exit_status(err)) from None
    if failed := grade.ungraded(done):
        raise SystemExit(f"rnlib grade: {len(failed)} of {len(done)} notebooks could not be "
                         "graded in full (see above)")


def add_grade_command(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``grade`` on an argparse subparsers object (``rnlib grade``)."""
    notebooks = list(dict.fromkeys(e.notebook for e in grade.EXERCISES.values()))
    p = subparsers.add_parser(
        "grade", help="grade submitted notebooks exercise by exercise",
        description="Run each notebook from a private copy in a fresh kernel and check its "
                    "exercises; print a table per notebook as it finishes. Exit status 1 when "
                    "a notebook could not be graded, 130 or 143 when stopped (SIGINT, "
                    "SIGTERM), else 0 whatever the "
                    "verdicts.")
    p.add_argument("notebooks", nargs="+", metavar="NOTEBOOK", help="submitted .ipynb files")
    p.add_argument("--seed", type=int, help="hidden variants: other sizes, weights and inputs "
                                            "than the checks students see")
    p.add_argument("--notebook", choices=notebooks, metavar="NAME",
                   help="the course notebook they all are (default: each one's metadata or "
                        f"file name); one of {', '.join(notebooks)}")
    p.add_argument("--cell-timeout", type=_positive, default=grade.DEFAULT_CELL_TIMEOUT,
                   metavar="SECONDS", help="time limit per cell and per check; a cell that "
                   "ignores the interrupt has its kernel killed (default "
                   f"{grade.DEFAULT_CELL_TIMEOUT})")
    p.add_argument("--notebook-timeout", type=_positive, default=grade.DEFAULT_NOTEBOOK_TIMEOUT,
                   metavar="SECONDS", help="time limit per notebook, kernel restarts included "
                   f"(default {grade.DEFAULT_NOTEBOOK_TIMEOUT})")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    p.add_argument("--csv", metavar="FILE", help="also write one CSV row per notebook and exercise")
    p.set_defaults(run=_grade_command)
    return p
