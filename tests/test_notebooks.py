"""The course notebooks: in sync with the solutions, and each unsolved one stops at its first
exercise with that exercise's message. (The solutions themselves run under nbval: the
`solutions` entry of pytest's testpaths.)"""

import json
import re
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient.exceptions import CellExecutionError

from rnlib import grade

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import make_exercises  # noqa: E402
from notebook_client import SteppingNotebookClient  # noqa: E402

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
        assert path.read_text() == make_exercises.render_solution(path), (
            f"solutions/{path.name} differs from the templates: run python tools/make_exercises.py")
        assert (ROOT / "notebooks" / path.name).read_text() == make_exercises.render(path), (
            f"notebooks/{path.name} is out of date: run python tools/make_exercises.py")


def test_stub_names_its_exercise():
    source = "x = 1\n    # Exercise 9.9: add one\n    ### BEGIN SOLUTION\n    y = x + 1\n    ### END SOLUTION"
    out = make_exercises.strip_solutions(source, "test")
    assert "raise NotImplementedError('Exercise 9.9: add one')" in out and "y = x + 1" not in out
    with pytest.raises(ValueError, match="without an '# Exercise"):
        make_exercises.strip_solutions("### BEGIN SOLUTION\n### END SOLUTION", "test")


def test_a_written_answer_becomes_a_placeholder():
    solution = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("### Question 9.2\nWhy?"),
        nbformat.v4.new_markdown_cell("**Written answer 9.2** Because the shortcut adds x."),
        nbformat.v4.new_code_cell("x = 1")])
    exercise = make_exercises.exercise_notebook(solution, "test")
    assert make_exercises.written_answers(solution) == ["9.2"]
    assert exercise.cells[0].source == "### Question 9.2\nWhy?"
    assert exercise.cells[1].source == make_exercises.PLACEHOLDER.format(id="9.2")
    assert "Because" not in make_exercises._text(exercise)
    solution.cells[1].source = "**Written answer 9.2**:"
    with pytest.raises(ValueError, match="written answer 9.2 has no model answer"):
        make_exercises.exercise_notebook(solution, "test")


def test_the_course_asks_for_written_answers_and_hides_their_model_answers():
    count = 0
    for path in SOLUTIONS:
        solution = nbformat.read(path, as_version=4)
        exercise = nbformat.read(ROOT / "notebooks" / path.name, as_version=4)
        ids = make_exercises.written_answers(solution)
        assert make_exercises.written_answers(exercise) == ids
        assert len(set(ids)) == len(ids), f"{path.name}: a written answer's id repeats"
        assert not set(ids) & set(make_exercises.exercises(solution)), (
            f"{path.name}: a written answer shares its id with a checked exercise")
        for cell in exercise.cells:
            if make_exercises.WRITTEN.match(cell.source):
                number = make_exercises.WRITTEN.match(cell.source).group(1)
                assert cell.source == make_exercises.PLACEHOLDER.format(id=number)
        count += len(ids)
    assert count >= 4


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.stem)
def test_each_notebook_has_colab_badge_install_cell_and_small_outputs(path):
    for nb in (nbformat.read(path, as_version=4),
               nbformat.read(ROOT / "notebooks" / path.name, as_version=4)):
        repository = f"github/{make_exercises.REPOSITORY}/blob/main/notebooks/{path.name})"
        assert repository in nb.cells[0].source
        install = nb.cells[1].source
        assert '"google.colab" in sys.modules' in install
        pip = next(line for line in install.splitlines() if "pip install" in line)
        assert f"git+https://github.com/{make_exercises.REPOSITORY}" in pip and "torch" not in pip
        assert nb.metadata.kernelspec == {"display_name": "Python 3 (ipykernel)",
                                          "language": "python", "name": "python3"}
    assert path.stat().st_size < 1_500_000, "keep committed outputs small"
    exercise = nbformat.read(ROOT / "notebooks" / path.name, as_version=4)
    assert all(not c.get("outputs") for c in exercise.cells)
    assert "widgets" not in exercise.metadata  # saved widget state holds outputs too


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.stem)
def test_each_notebook_ends_with_the_verdict_on_its_exercises(path):
    nb = nbformat.read(path, as_version=4)
    ids = make_exercises.exercises(nb)
    assert all(grade.EXERCISES[e].notebook == path.stem for e in ids)
    if not ids:
        assert "rnlib.grade" not in path.read_text()
        return
    last = nb.cells[-1]
    assert f"rnlib.grade.print_summary(globals(), {json.dumps(ids)})" in last.source
    printed = "".join(o.get("text", "") for o in last.outputs)
    assert printed.endswith(f"{len(ids)} of {len(ids)} exercises passed\n")


def test_every_colab_badge_and_install_points_at_the_repository_setting():
    """Every Colab link and every pip install from GitHub, in the notebooks and the README,
    names make_exercises.REPOSITORY, and each README link opens a notebook that exists."""
    colab = re.compile(r"colab\.research\.google\.com/github/([\w.-]+/[\w.-]+)/blob/main/"
                       r"notebooks/([\w.-]+\.ipynb)")
    pip = re.compile(r"git\+https://github\.com/([\w.-]+/[\w.-]+?)(?:\.git)?[\"@\s]")
    readme = (ROOT / "README.md").read_text()
    texts = {"README.md": readme} | {
        f"{p.parent.name}/{p.name}": p.read_text() for p in SOLUTIONS
    } | {f"notebooks/{p.name}": (ROOT / "notebooks" / p.name).read_text() for p in SOLUTIONS}
    for where, text in texts.items():
        found = [m.group(1) for m in colab.finditer(text)] + pip.findall(text)
        assert found, f"{where} has no Colab badge or install line"
        assert set(found) == {make_exercises.REPOSITORY}, where
    linked = {m.group(2) for m in colab.finditer(readme)}
    assert linked == {p.name for p in SOLUTIONS}


def test_a_fork_changes_one_line(monkeypatch):
    monkeypatch.setattr(make_exercises, "REPOSITORY", "someone/fork")
    path = ROOT / "solutions" / "03_residual_conv_unit.ipynb"
    for text in (make_exercises.render_solution(path), make_exercises.render(path)):
        nb = nbformat.reads(text, as_version=4)
        head = nb.cells[0].source + nb.cells[1].source
        assert head.count("someone/fork") == 2 and "rnlib/rnlib" not in head


def test_the_templates_replace_what_a_notebook_had():
    nb = nbformat.read(ROOT / "solutions" / "03_residual_conv_unit.ipynb", as_version=4)
    nb.cells[0].source = nb.cells[0].source.replace("github/rnlib/rnlib", "github/old/place")
    nb.cells[1].source = "%pip install rnlib"
    nb.cells.pop()  # no summary cell
    nb.metadata.kernelspec.display_name = "Python 3"
    fixed = make_exercises.course_notebook(nb, "03_residual_conv_unit.ipynb")
    assert "old/place" not in fixed.cells[0].source
    assert fixed.cells[1].source == make_exercises.INSTALL.format(repository="rnlib/rnlib")
    assert "print_summary(globals(), [\"3.1\"])" in fixed.cells[-1].source
    assert fixed.metadata.kernelspec.display_name == "Python 3 (ipykernel)"


def _first_exercise(path: Path) -> str | None:
    found = re.search(r"Exercise \d+\.\d+", path.read_text())
    return found.group(0) if found else None


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.stem)
def test_unsolved_notebook_stops_at_its_first_exercise(path):
    exercise = ROOT / "notebooks" / path.name
    nb = nbformat.read(exercise, as_version=4)
    client = SteppingNotebookClient(nb, timeout=300, kernel_name="python3",
                                    resources={"metadata": {"path": str(exercise.parent)}})
    expected = _first_exercise(path)
    if expected is None:
        client.execute()
        return
    with pytest.raises(CellExecutionError) as error:
        client.execute()
    assert "NotImplementedError" in str(error.value) and expected in str(error.value)
