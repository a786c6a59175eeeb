"""Grading: the summary of a notebook's exercises, and `rnlib grade` on submitted notebooks
(small notebooks written here; the course's own are graded by hand, see the README).

The kernel-based tests share one batch (:func:`batch`): each of its notebooks tries one way to
hang, crash or fool the grader, and every other notebook must still be graded right."""

import argparse
import contextlib
import csv
import io
import json
import os
import signal
import sys
import time
from pathlib import Path

import nbformat
import pytest
import torch
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from rnlib import checks, grade
from rnlib.cli.grade import add_grade_command
from rnlib.grading import guard
from rnlib.grading.kernel import GRACE
from rnlib.grading.submission import defining_cells, one_line

sys.path.insert(0, str(Path(__file__).parent))
from corpus import ex03_rcu, ex05_crp  # noqa: E402
from solved import solved_exercise_notebook  # noqa: E402

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
WRONG_RCU_SOURCE = RCU_SOURCE.replace("return x + ", "return ")  # no residual

PARALLEL_CRP_SOURCE = """import torch.nn.functional as F
from torch import nn

class ChainedResidualPooling(nn.Module):
    def __init__(self, channels, num_blocks=4):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(channels, channels, 3, padding=1, bias=False)
                                   for _ in range(num_blocks))

    def forward(self, x):
        x = F.relu(x)
        return x + sum(conv(F.max_pool2d(x, 5, 1, 2)) for conv in self.convs)
"""

PIXEL_ACCURACY_SOURCE = """def pixel_accuracy(pred, target, ignore_index=255):
    keep = target != ignore_index
    return (pred[keep] == target[keep]).float().mean().item()
"""

# the patches: each alone made a wrong RCU pass when the grade came from the notebook
PATCHES = {
    "check_rcu": "import rnlib.checks\nrnlib.checks.check_rcu = lambda *a, **k: None",
    "allclose": "import torch\ntorch.allclose = lambda *a, **k: True",
    "_close": "import rnlib.checks\nrnlib.checks._close = lambda *a, **k: True",
    "_grade": "import rnlib.grade as g\n"
              "g._grade = lambda e, ns, seed: g.Result(e.id, e.name, 'passed', 'ok')",
    "EXERCISES": "import rnlib.grade as g\n"
                 "g.EXERCISES['3.1'] = g.Exercise('3.1', '03_residual_conv_unit', 'RCU', "
                 "lambda *a, **k: None)",
    "code": "import inspect, rnlib.checks\n"  # the checker's own code object, not a wrapper's
            "inspect.unwrap(rnlib.checks.check_rcu).__code__ = (lambda *a, **k: None).__code__",
}
ALL_PATCHES = "\n".join(PATCHES.values())


def _parser():
    parser = argparse.ArgumentParser(prog="rnlib")
    add_grade_command(parser.add_subparsers(dest="command", required=True))
    return parser


# -- the summary in a notebook ----------------------------------------------------------------
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


class UsesLibraryError(checks.ExerciseError):
    """As the checkers raise for a solution that is rnlib's own code."""


class VerdictError(checks.ExerciseError):
    verdict = grade.USES_LIBRARY


@pytest.mark.parametrize("error", [UsesLibraryError, VerdictError, checks.ExerciseError])
def test_an_error_that_says_it_uses_rnlib_is_its_own_verdict(error):
    def check(obj, *, seed=None):
        raise error("RCU: this is rnlib.blocks.RCU")

    result = grade._grade(grade.Exercise("3.1", "03", "RCU", check), {"RCU": object}, None)
    expected = "failed" if error is checks.ExerciseError else "uses rnlib's implementation"
    assert (result.status, result.message) == (expected, "RCU: this is rnlib.blocks.RCU")


def test_a_check_that_prints_megabytes_keeps_a_short_message():
    def check(obj, *, seed=None):
        print("x" * 5_000_000)

    result = grade._grade(grade.Exercise("3.1", "03", "RCU", check), {"RCU": object}, None)
    assert result.status == "passed" and len(result.message) < grade.MESSAGE_LIMIT + 100
    assert result.message.endswith(f"({5_000_000 - grade.MESSAGE_LIMIT} more characters)")


# -- which exercises a submission has -----------------------------------------------------------
def test_exercises_come_from_the_course_not_from_the_markers():
    removed = new_notebook(cells=[new_code_cell("def RefineNetBlock(): pass")])
    assert grade.exercises_in(removed, Path("x_06_refinenet_cascade.ipynb")) == ["6.1", "6.2"]
    added = new_notebook(cells=[new_markdown_cell("## Exercise 7.1 and Exercise 1.2"),
                                new_code_cell("def poly_lr(): pass\ndef mean_iou(): pass")])
    assert grade.exercises_in(added, Path("03_residual_conv_unit.ipynb")) == ["3.1"]
    added.metadata["rnlib"] = {"notebook": "05_chained_residual_pooling"}  # a renamed file
    assert grade.exercises_in(added, Path("my homework.ipynb")) == ["5.1"]
    assert grade.exercises_in(added, Path("x.ipynb"), "01_data_and_metrics") == ["1.1", "1.2"]
    with pytest.raises(ValueError, match="not a course notebook.*--notebook"):
        grade.exercises_in(removed, Path("alice.ipynb"))


def test_the_course_writes_its_id_into_each_exercise_notebook():
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        assert nbformat.read(path, 4).metadata["rnlib"] == {"notebook": path.stem}


def test_the_cell_that_defines_each_name():
    cells = ["import torch\nfrom rnlib.blocks import RCU as R", "%pip install x\nclass RCU: pass",
             "if True:\n    def helper():\n        inner = 1\n[h for h in range(3)]",
             "def broken(:", "RCU = None"]
    assert defining_cells(cells, ["R", "RCU", "helper", "inner", "h", "broken", "torch"]) == {
        "R": 0, "RCU": 4, "helper": 2, "inner": None, "h": None, "broken": None, "torch": 0}


def test_an_exception_without_a_message_is_one_line():
    assert one_line(KeyboardInterrupt()) == "KeyboardInterrupt"
    assert one_line(ValueError("first\nsecond")) == "first"


# -- the guard, in this process: the notebook's patches cannot reach the check ------------------
@pytest.fixture
def guarded(tmp_path):
    guard.install(str(tmp_path), None)
    yield lambda: json.loads((tmp_path / "3.1.json").read_text())
    guard._restore()


@pytest.mark.parametrize("patch", PATCHES)
def test_a_patch_of_the_checkers_leaves_a_wrong_solution_failed(guarded, patch):
    exec(PATCHES[patch], {})
    namespace = {}
    exec(WRONG_RCU_SOURCE, namespace)
    guard.check("3.1", namespace)
    assert guarded()["status"] == "failed" and "residual" in guarded()["message"]
    assert torch.allclose(torch.zeros(1), torch.ones(1)) is False  # put back after the check
    assert grade.EXERCISES["3.1"].check is checks.check_rcu


def test_grad_mode_and_torch_modes_are_reset_before_a_check(guarded):
    namespace = {}
    exec(RCU_SOURCE, namespace)
    with torch.no_grad(), torch.overrides.TorchFunctionMode():
        guard.check("3.1", namespace)
        assert not torch.is_grad_enabled()  # the notebook's state is back after the check
    assert guarded()["status"] == "passed"


def test_a_solution_that_patches_torch_while_it_is_checked_fails(guarded):
    namespace = {}
    exec(WRONG_RCU_SOURCE.replace("    def forward(self, x):\n", "    def forward(self, x):\n"
                                  "        torch.allclose = lambda *a, **k: True\n"),
         namespace)
    namespace["torch"] = torch
    guard.check("3.1", namespace)
    assert guarded()["status"] == "failed"
    assert "changed torch.allclose while it was checked" in guarded()["message"]
    assert torch.allclose(torch.zeros(1), torch.ones(1)) is False


# -- rnlib grade on a batch of submissions --------------------------------------------------------
def _notebook(folder: Path, name: str, *sources: str, metadata=None) -> Path:
    nb = new_notebook(cells=[new_code_cell(s) for s in sources])
    nb.metadata.update(metadata or {})
    nbformat.write(nb, folder / name)
    return folder / name


def _homework(folder: Path) -> Path:
    """notebooks/03 solved, renamed, with extra exercises' markers and definitions in it."""
    nb = solved_exercise_notebook("03_residual_conv_unit.ipynb")
    nb.cells[-1:-1] = [new_markdown_cell("## Exercise 7.1"),
                       new_code_cell("def poly_lr(*a, **k):\n    return 0.0")]
    nbformat.write(nb, folder / "homework.ipynb")
    return folder / "homework.ipynb"


LOOP_IGNORING_INTERRUPTS = """import time
while True:
    try:
        time.sleep(0.05)
    except KeyboardInterrupt:
        pass"""

VANDAL = """import pathlib
for f in pathlib.Path('.').iterdir():
    f.unlink()
pathlib.Path('alice_03_residual_conv_unit.ipynb').write_text('{}')"""


def _batch(folder: Path) -> list[Path]:
    return [
        # hangs, then changes grad mode, then the patches in the last cell
        _notebook(folder, "alice_03_residual_conv_unit.ipynb", LOOP_IGNORING_INTERRUPTS,
                  "import torch\ntorch.set_grad_enabled(False)", RCU_SOURCE, ALL_PATCHES),
        # 50 MB of output, then os._exit
        _notebook(folder, "bob_05_chained_residual_pooling.ipynb",
                  "for _ in range(50):\n    print('x' * 1_000_000)", "import os\nos._exit(3)",
                  PARALLEL_CRP_SOURCE),
        # its kernel killed between its two exercises
        _notebook(folder, "carol_01_data_and_metrics.ipynb", PIXEL_ACCURACY_SOURCE,
                  "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)",
                  "def mean_iou(pred, target, num_classes, ignore_index=255):\n"
                  "    raise NotImplementedError('Exercise 1.2: todo')"),
        # deletes and rewrites its neighbours; patches before the exercise and in its cell
        _notebook(folder, "dave_03_residual_conv_unit.ipynb", VANDAL, ALL_PATCHES,
                  ALL_PATCHES + "\n" + WRONG_RCU_SOURCE),
        _homework(folder),
        folder / "missing.ipynb",
    ] + [_write(folder / name, text) for name, text in [
        ("broken.ipynb", '{"cells": ['), ("empty.ipynb", ""), ("essay.txt", "in the email")]]


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


CELL_TIMEOUT, NOTEBOOK_TIMEOUT = 3, 120


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    """``rnlib grade`` on the batch: (paths, stdout, stderr, exit code, seconds, folder state)."""
    folder = tmp_path_factory.mktemp("submissions")
    paths = _batch(folder)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    out = folder.parent / "out"
    out.mkdir()
    args = _parser().parse_args(["grade", *map(str, paths), "--cell-timeout", str(CELL_TIMEOUT),
                                 "--notebook-timeout", str(NOTEBOOK_TIMEOUT),
                                 "--json", str(out / "grades.json"),
                                 "--csv", str(out / "grades.csv")])
    seconds = []  # each notebook's
    grade_one = grade._grade_one

    def timed(*args, **kwargs):
        start = time.monotonic()
        try:
            return grade_one(*args, **kwargs)
        finally:
            seconds.append(time.monotonic() - start)

    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr), \
            pytest.MonkeyPatch.context() as patch, pytest.raises(SystemExit) as exit:
        patch.setattr(grade, "_grade_one", timed)
        args.run(args)
    after = {p.name: p.read_bytes() for p in folder.iterdir()}
    return dict(paths=paths, out=stdout.getvalue(), err=stderr.getvalue(), exit=exit.value,
                seconds=seconds, unchanged=before == after, files=out)


def _verdicts(batch, index):
    data = json.loads((batch["files"] / "grades.json").read_text())
    return [(e["exercise"], e["status"]) for e in data[index]["exercises"]], data[index]


def test_the_batch_finishes_within_its_limits_and_leaves_the_submissions_alone(batch):
    assert len(batch["seconds"]) == 9
    assert max(batch["seconds"]) < NOTEBOOK_TIMEOUT + GRACE + 10  # + an interrupt's grace, a shutdown
    assert batch["unchanged"]
    assert str(batch["exit"].code) == "rnlib grade: 4 of 9 notebooks could not be graded in " \
                                      "full (see above)"


def test_a_cell_ignoring_interrupts_is_killed_and_the_notebook_still_graded(batch):
    verdicts, data = _verdicts(batch, 0)
    assert verdicts == [("3.1", "passed")]  # with grad mode off and patches after it


def test_50_mb_of_output_and_os_exit_do_not_stop_the_grading(batch):
    verdicts, data = _verdicts(batch, 1)
    assert verdicts == [("5.1", "failed")]
    assert "in parallel" in data["exercises"][0]["message"]


def test_a_killed_kernel_is_restarted_for_the_remaining_exercises(batch):
    verdicts, _ = _verdicts(batch, 2)
    assert verdicts == [("1.1", "passed"), ("1.2", "not attempted")]


def test_patches_and_vandalism_leave_a_wrong_solution_failed(batch):
    verdicts, data = _verdicts(batch, 3)
    assert verdicts == [("3.1", "failed")]
    assert "residual" in data["exercises"][0]["message"]


def test_a_renamed_submission_is_graded_on_its_course_exercises_only(batch):
    assert _verdicts(batch, 4)[0] == [("3.1", "passed")]


def test_the_files_that_are_not_notebooks_are_reported_and_results_written(batch):
    paths, out = batch["paths"], batch["out"]
    assert f"{paths[5]}: not graded: no such file" in out
    assert f"{paths[6]}: not graded: not a Jupyter notebook" in out
    assert f"{paths[7]}: not graded: the file is empty" in out
    assert f"{paths[8]}: not graded: not a Jupyter notebook" in out
    assert "3.1       RCU      passed   RCU: all checks passed." in out
    assert [f"grading {p} ({i} of 9)" for i, p in enumerate(paths, 1)] == \
        batch["err"].splitlines()
    rows = list(csv.DictReader((batch["files"] / "grades.csv").open()))
    assert [r["status"] for r in rows] == ["passed", "failed", "passed", "not attempted",
                                           "failed", "passed", "error", "error", "error", "error"]


def test_a_notebook_out_of_time_is_not_graded(tmp_path):
    path = _notebook(tmp_path, "03_residual_conv_unit.ipynb", RCU_SOURCE)
    (report,) = grade.grade_notebooks([path], notebook_timeout=1, progress=False)
    assert [(r.status, r.message) for r in report.results] == [
        ("not graded", "the notebook ran past its time limit of 1 s")]
    assert grade.ungraded([report]) == [report]


def test_a_kernel_slower_to_start_than_the_notebooks_time_is_out_of_time(tmp_path, monkeypatch):
    from rnlib.grading import runner

    class SlowKernel:  # a loaded machine: wait_for_ready gives up at the notebook's deadline
        def __init__(self, cwd, startup):
            time.sleep(startup)
            raise RuntimeError("Kernel didn't respond in time")

    class BrokenKernel:  # no kernel at all: it fails at once, long before the deadline
        def __init__(self, cwd, startup):
            raise RuntimeError("No such kernel named python3")

    path = _notebook(tmp_path, "03_residual_conv_unit.ipynb", RCU_SOURCE)
    monkeypatch.setattr(runner, "Kernel", SlowKernel)
    (report,) = grade.grade_notebooks([path], notebook_timeout=0.2, progress=False)
    assert (report.error, [r.status for r in report.results]) == (None, ["not graded"])
    monkeypatch.setattr(runner, "Kernel", BrokenKernel)
    (report,) = grade.grade_notebooks([path], notebook_timeout=60, progress=False)
    assert report.error == "the kernel did not start (No such kernel named python3)"


# -- the command line ------------------------------------------------------------------------
@pytest.mark.parametrize("argv", [["grade"], ["grade", "a.ipynb", "--cell-timeout", "0"],
                                  ["grade", "a.ipynb", "--notebook-timeout", "-1"],
                                  ["grade", "a.ipynb", "--notebook", "03"],
                                  ["grade", "a.ipynb", "--seed", "x"]])
def test_grade_command_refuses_bad_arguments_with_status_2(argv, capsys):
    with pytest.raises(SystemExit) as exit:
        _parser().parse_args(argv)
    assert exit.value.code == 2


@pytest.fixture
def python_sigint():
    """Python's own SIGINT handler (KeyboardInterrupt) for the test. Python installs it only
    where its parent left SIGINT alone; a background job of a shell without job control (nohup
    ... &) starts with SIGINT ignored, and a test of Ctrl-C would then wait out its sleep."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.mark.parametrize("stop", ["SIGINT", "SIGTERM"])
def test_stopped_from_outside_it_keeps_what_it_has_and_says_so(stop, tmp_path, monkeypatch,
                                                                capsys, python_sigint):
    def two_notebooks(paths, *, on_report, **kwargs):
        on_report(grade.Report("a.ipynb", [grade.Result("3.1", "RCU", "passed", "")]))
        os.kill(os.getpid(), getattr(signal, stop))
        time.sleep(5)  # the signal arrives here

    monkeypatch.setattr(grade, "grade_notebooks", two_notebooks)
    args = _parser().parse_args(["grade", "a.ipynb", "b.ipynb", "--json",
                                 str(tmp_path / "g.json")])
    with pytest.raises(SystemExit) as exit:
        args.run(args)
    assert exit.value.code == {"SIGINT": 130, "SIGTERM": 143}[stop]
    assert capsys.readouterr().err == f"rnlib grade: stopped after 1 of 2 notebooks; their " \
                                      f"results are in {tmp_path / 'g.json'}\n"
    assert [d["notebook"] for d in json.loads((tmp_path / "g.json").read_text())] == ["a.ipynb"]
