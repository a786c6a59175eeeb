"""``rnlib grade``: submitted notebooks run and checked, exercise by exercise."""

from __future__ import annotations

import argparse
from typing import Any

from ..grade import DEFAULT_CELL_TIMEOUT, format_reports, grade_notebooks, write_csv, write_json


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def _grade_command(args: argparse.Namespace) -> None:
    reports = grade_notebooks(args.notebooks, cell_timeout=args.cell_timeout, seed=args.seed)
    print(format_reports(reports))
    if args.json:
        write_json(reports, args.json)
    if args.csv:
        write_csv(reports, args.csv)


def add_grade_command(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``grade`` on an argparse subparsers object (``rnlib grade``)."""
    p = subparsers.add_parser(
        "grade", help="grade submitted notebooks exercise by exercise",
        description="Run each notebook in a fresh kernel and check its exercises; print a table "
                    "per notebook. Exit status 0 when grading ran, whatever the verdicts.")
    p.add_argument("notebooks", nargs="+", metavar="NOTEBOOK", help="submitted .ipynb files")
    p.add_argument("--seed", type=int, help="hidden variants: other sizes, weights and inputs "
                                            "than the checks students see")
    p.add_argument("--cell-timeout", type=_positive, default=DEFAULT_CELL_TIMEOUT,
                   metavar="SECONDS", help=f"time limit per cell (default {DEFAULT_CELL_TIMEOUT})")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    p.add_argument("--csv", metavar="FILE", help="also write one CSV row per notebook and exercise")
    p.set_defaults(run=_grade_command)
    return p
