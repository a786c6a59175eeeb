"""The library's shape: what ``import rnlib`` costs, and how long its modules, classes and
functions may grow."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _python(code: str) -> subprocess.CompletedProcess:
    """``code`` in a fresh interpreter (a test's own imports would hide what rnlib loads)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)


@pytest.mark.parametrize("module", ["datasets", "pyarrow"])
def test_import_rnlib_loads_no_data_library(module):
    done = _python(f"import rnlib, sys; assert {module!r} not in sys.modules")
    assert done.returncode == 0, done.stderr


def test_import_rnlib_leaves_the_progress_bars_of_datasets_alone():
    done = _python("import datasets, rnlib, rnlib.data, rnlib.cli; "
                   "assert datasets.is_progress_bar_enabled()")
    assert done.returncode == 0, done.stderr
