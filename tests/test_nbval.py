"""Students check their own work with nbval, as each notebook's header and the README say:
it fails at the exercise with the exercise's hint until the exercise is solved."""

import os
import re
import shutil
import subprocess
import sys

import nbformat
import pytest
from solved import ROOT, solved_exercise_notebook

NAME = "03_residual_conv_unit.ipynb"


def _nbval(path):
    """``pytest --nbval-lax --nbval-current-env PATH`` as a student runs it, outside this repo's
    configuration; (exit status, output)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-current-env",
                           "-p", "no:cacheprovider", "-q", path.name], cwd=path.parent, env=env,
                          capture_output=True, text=True, timeout=300)
    return done.returncode, re.sub(r"\x1b\[[0-9;]*m", "", done.stdout + done.stderr)  # colours


@pytest.fixture
def exercise(tmp_path):
    shutil.copy(ROOT / "notebooks" / NAME, tmp_path / NAME)
    return tmp_path / NAME


def test_nbval_fails_on_an_unsolved_notebook_with_the_exercises_hint(exercise):
    status, output = _nbval(exercise)
    assert status == 1
    assert "NotImplementedError: Exercise 3.1: the two convolutions of panel (b)" in output


def test_nbval_passes_once_the_exercises_are_solved(exercise):
    nbformat.write(solved_exercise_notebook(NAME), exercise)
    status, output = _nbval(exercise)
    assert status == 0, output
    assert "passed" in output.splitlines()[-1]
