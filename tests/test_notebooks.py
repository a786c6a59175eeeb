"""The course notebooks: in sync with the solutions, and each unsolved one stops at its first
exercise with that exercise's message. (The solutions themselves run under nbval: the
`solutions` entry of pytest's testpaths.)"""

import re
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import make_exercises  # noqa: E402

SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))


def test_there_is_a_course():
    names = [p.stem for p in SOLUTIONS]
    assert len(names) == 11 and names[0].startswith("00_") and names[-1].startswith("10_")
    exercises = {m for p in SOLUTIONS for m in re.findall(r"Exercise (\d+\.\d+):", p.read_text())}
    assert len(exercises) >= 12


def test_notebooks_are_generated_from_solutions():
    exercise_files = sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb"))
    assert exercise_files == [p.name for p in SOLUTIONS]
    for path in SOLUTIONS:
        assert (ROOT / "notebooks" / path.name).read_text() == make_exercises.render(path), (
            f"notebooks/{path.name} is out of date: run python tools/make_exercises.py")


def test_stub_names_its_exercise():
    source = "x = 1\n    # Exercise 9.9: add one\n    ### BEGIN SOLUTION\n    y = x + 1\n    ### END SOLUTION"
    out = make_exercises.strip_solutions(source, "test")
    assert "raise NotImplementedError('Exercise 9.9: add one')" in out and "y = x + 1" not in out
    with pytest.raises(ValueError, match="without an '# Exercise"):
        make_exercises.strip_solutions("### BEGIN SOLUTION\n### END SOLUTION", "test")


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.stem)
def test_each_notebook_has_colab_badge_install_cell_and_small_outputs(path):
    nb = nbformat.read(path, as_version=4)
    assert "colab.research.google.com" in nb.cells[0].source
    assert "pytest --nbval-lax --nbval-current-env notebooks/" in nb.cells[0].source
    install = nb.cells[1].source
    assert '"google.colab" in sys.modules' in install
    assert "torch" not in next(line for line in install.splitlines() if "pip install" in line)
    assert path.stat().st_size < 1_500_000, "keep committed outputs small"
    exercise = nbformat.read(ROOT / "notebooks" / path.name, as_version=4)
    assert all(not c.get("outputs") for c in exercise.cells)
    assert "widgets" not in exercise.metadata  # saved widget state holds outputs too


def _first_exercise(path: Path) -> str | None:
    found = re.search(r"Exercise \d+\.\d+", path.read_text())
    return found.group(0) if found else None


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.stem)
def test_unsolved_notebook_stops_at_its_first_exercise(path):
    exercise = ROOT / "notebooks" / path.name
    nb = nbformat.read(exercise, as_version=4)
    client = NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(exercise.parent)}})
    expected = _first_exercise(path)
    if expected is None:
        client.execute()
        return
    with pytest.raises(CellExecutionError) as error:
        client.execute()
    assert "NotImplementedError" in str(error.value) and expected in str(error.value)
