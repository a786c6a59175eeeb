"""The library's shape: what ``import rnlib`` costs, and how long its modules, classes and
functions may grow."""

import ast
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


LIMITS = {"module": 500, "class": 200, "function": 60}


def _sizes():
    """(what, name, lines) for every module, class and function of rnlib."""
    for path in sorted((ROOT / "rnlib").rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        text = path.read_text()
        yield "module", relative, len(text.splitlines())
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                what = "class" if isinstance(node, ast.ClassDef) else "function"
                yield what, f"{relative}:{node.name}", node.end_lineno - node.lineno + 1


def test_no_module_class_or_function_outgrows_its_limit():
    too_long = [f"{what} {name}: {lines} lines (limit {LIMITS[what]})"
                for what, name, lines in _sizes() if lines > LIMITS[what]]
    assert not too_long, "\n".join(too_long)
