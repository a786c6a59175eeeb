"""Grading: the summary of a notebook's exercises, and `rnlib grade` on submitted notebooks
(small notebooks written here; the course's own are graded by hand, see the README)."""

import argparse
import csv
import json
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from rnlib import grade
from rnlib.cli.grade import add_grade_command

sys.path.insert(0, str(Path(__file__).parent))
from corpus import ex03_rcu, ex05_crp  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

RCU_SOURCE = """import torch.nn.functional as F
from torch import nn

class RCU(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)

    def forward(self, x):
        return x + self.conv2(F.relu(self.conv1(F.relu(x))))
"""

PARALLEL_CRP_SOURCE = """class ChainedResidualPooling(nn.Module):
    def __init__(self, channels, num_blocks=4):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(channels, channels, 3, padding=1, bias=False)
                                   for _ in range(num_blocks))

    def forward(self, x):
        x = F.relu(x)
        return x + sum(conv(F.max_pool2d(x, 5, 1, 2)) for conv in self.convs)
"""


def _parser():
    parser = argparse.ArgumentParser(prog="rnlib")
    add_grade_command(parser.add_subparsers(dest="command", required=True))
    return parser


def test_summary_passes_fails_and_finds_stubs_and_missing_names():
    def stub(pred, target, ignore_index=255):
        raise NotImplementedError("Exercise 1.1: the share of pixels ...")

    namespace = {"RCU": ex03_rcu.correct_sequential,
                 "ChainedResidualPooling": ex05_crp.wrong_parallel, "pixel_accuracy": stub}
    results = grade.summary(namespace, ["3.1", "5.1", "1.1", "1.2"])
    assert [(r.exercise, r.name, r.status) for r in results] == [
        ("3.1", "RCU", "passed"), ("5.1", "ChainedResidualPooling", "failed"),
        ("1.1", "pixel_accuracy", "not attempted"), ("1.2", "mean_iou", "failed")]
    assert results[0].message == "RCU: all checks passed."
    assert "in parallel" in results[1].message and "Hint:" in results[1].message
    assert results[2].message == "Exercise 1.1: the share of pixels ..."
    assert "mean_iou is not defined" in results[3].message


def test_a_passing_note_reaches_the_summary():
    from corpus import ex04_fusion

    (result,) = grade.summary({"MultiResolutionFusion": ex04_fusion.correct_align_corners_false},
                              ["4.1"])
    assert result.status == "passed" and "align_corners=True" in result.message


def test_the_summary_table(capsys):
    grade.print_summary({"RCU": ex03_rcu.correct_as_in_the_paper,
                         "ChainedResidualPooling": ex05_crp.wrong_parallel}, ["3.1", "5.1"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["exercise", "defines", "verdict", "message"]
    assert lines[1].split()[:3] == ["3.1", "RCU", "passed"]
    assert lines[2].split()[:3] == ["5.1", "ChainedResidualPooling", "failed"]
    assert lines[-1] == "1 of 2 exercises passed"
    message_column = lines[2].index("ChainedResidualPooling: ")
    assert all(line.startswith(" " * message_column) for line in lines[3:-1])  # Hint, context


def test_exercises_are_found_by_markers_and_by_the_notebooks_name():
    nb = new_notebook(cells=[new_markdown_cell("## Exercise 5.1 — pooling"),
                             new_code_cell("# Exercise 9.9: not of the course")])
    assert grade.exercises_in(nb, Path("alice.ipynb")) == ["5.1"]
    assert grade.exercises_in(nb, Path("06_refinenet_cascade.ipynb")) == ["5.1", "6.1", "6.2"]


def _submissions(folder: Path) -> list[Path]:
    """A student who solved 3.1, got 5.1 wrong, left a cell looping forever and one raising;
    then files that are not notebooks."""
    alice = folder / "alice.ipynb"
    nbformat.write(new_notebook(cells=[
        new_markdown_cell("## Exercise 3.1 — `RCU(channels)`"),
        new_code_cell(RCU_SOURCE),
        new_code_cell("while True:\n    pass"),
        new_code_cell("raise ValueError('a cell that fails')"),
        new_markdown_cell("## Exercise 5.1 — `ChainedResidualPooling`"),
        new_code_cell(PARALLEL_CRP_SOURCE),
    ]), alice)
    (folder / "broken.ipynb").write_text('{"cells": [')
    (folder / "empty.ipynb").write_text("")
    (folder / "essay.txt").write_text("my answers are in the email")
    return [alice, folder / "broken.ipynb", folder / "empty.ipynb", folder / "essay.txt"]


def test_grade_command_grades_each_notebook_and_reports_the_others(tmp_path, capsys):
    paths = _submissions(tmp_path)
    args = _parser().parse_args(["grade", *map(str, paths), "--cell-timeout", "10",
                                 "--json", str(tmp_path / "grades.json"),
                                 "--csv", str(tmp_path / "grades.csv")])
    args.run(args)
    out = capsys.readouterr().out
    assert "3.1       RCU                     passed" in out
    assert "5.1       ChainedResidualPooling  failed   ChainedResidualPooling: the pooling " \
           "blocks run in parallel" in out
    assert "1 of 2 exercises passed" in out
    assert f"{paths[1]}: not graded: not a Jupyter notebook" in out
    assert f"{paths[2]}: not graded: the file is empty" in out
    assert f"{paths[3]}: not graded: not a Jupyter notebook" in out

    data = json.loads((tmp_path / "grades.json").read_text())
    assert [(d["passed"], d["total"], d["error"] is None) for d in data] == [
        (1, 2, True), (0, 0, False), (0, 0, False), (0, 0, False)]
    assert [e["status"] for e in data[0]["exercises"]] == ["passed", "failed"]
    rows = list(csv.DictReader((tmp_path / "grades.csv").open()))
    assert [(r["exercise"], r["status"]) for r in rows] == [
        ("3.1", "passed"), ("5.1", "failed"), ("", "error"), ("", "error"), ("", "error")]
    assert "in parallel" in rows[1]["message"]


@pytest.mark.parametrize("argv", [["grade"], ["grade", "a.ipynb", "--cell-timeout", "0"],
                                  ["grade", "a.ipynb", "--seed", "x"]])
def test_grade_command_refuses_bad_arguments_with_status_2(argv, capsys):
    with pytest.raises(SystemExit) as exit:
        _parser().parse_args(argv)
    assert exit.value.code == 2


def test_the_course_notebook_and_its_solution(capsys):
    reports = grade.grade_notebooks([ROOT / "notebooks" / "03_residual_conv_unit.ipynb",
                                     ROOT / "solutions" / "03_residual_conv_unit.ipynb"],
                                    cell_timeout=300, seed=3, progress=False)
    (todo,), (done,) = (r.results for r in reports)
    assert todo.status == "not attempted" and todo.message.startswith("Exercise 3.1: ")
    assert done.status == "passed"
