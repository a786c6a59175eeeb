"""Every number that README.md and the notebooks quote from a recorded result agrees with its
JSON (tools/quotes.py), and a number that disagrees is found and rewritten."""

import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import quotes  # noqa: E402

R = "RefineNet (4-cascade)"


@pytest.fixture(scope="module")
def sources():
    return quotes.load_sources()


@pytest.fixture(scope="module")
def readme():
    return (ROOT / "README.md").read_text()


def test_every_quote_agrees_with_its_recorded_json():
    assert quotes.run(write=False) == []


def test_the_readme_quotes_both_records_in_tables_and_in_its_text(readme):
    found = [(m["source"] or quotes.DEFAULT) for m in quotes.QUOTE.finditer(readme)]
    assert found.count("reference") >= 10 and found.count("comparison") >= 2
    assert [m["source"] for m in quotes.TABLE.finditer(readme)] == ["reference", "comparison"]


def _plant(text: str, match) -> tuple[str, str]:
    """``text`` with the number of the quote ``match`` made wrong, and that wrong number."""
    number = match["number"]
    wrong = quotes.formatted(float(number) + 1, number)
    return text[:match.start("number")] + wrong + text[match.end("number"):], wrong


def test_a_wrong_number_in_a_copy_is_found_and_rewritten(readme, sources):
    first = next(quotes.QUOTE.finditer(readme))
    planted, wrong = _plant(readme, first)
    text, problems = quotes.requote(planted, sources, "README.md")
    line = readme.count("\n", 0, first.start()) + 1
    assert problems == [f"README.md, line {line}: {wrong}, but reference gives {first['number']} "
                        f"({first['expr']})"]
    assert text == readme


def test_a_wrong_table_cell_is_found_and_the_table_regenerated(readme, sources):
    table = next(quotes.TABLE.finditer(readme))["table"]
    row = table.strip().splitlines()[2]  # the first model's
    wrong = readme.replace(row, row.replace(" | ", " | 9", 1), 1)
    text, problems = quotes.requote(wrong, sources, "README.md")
    assert len(problems) == 1 and "the reference table differs" in problems[0]
    assert text == readme


def test_write_rewrites_a_solution_and_regenerates_its_exercise_notebook(tmp_path, monkeypatch):
    """--write on a copy of the repository's documents: a wrong quote in a solution's markdown
    is put right, and notebooks/ follows."""
    name = "09_ablations.ipynb"
    for folder in ("solutions", "notebooks"):
        (tmp_path / folder).mkdir()
        shutil.copy(ROOT / folder / name, tmp_path / folder / name)
    shutil.copy(ROOT / "README.md", tmp_path / "README.md")
    solution = tmp_path / "solutions" / name
    right = solution.read_text()
    first = next(quotes.QUOTE.finditer(right))
    planted, wrong = _plant(right, first)
    solution.write_text(planted)
    monkeypatch.setattr(quotes, "ROOT", tmp_path)
    monkeypatch.setattr(quotes.make_exercises, "ROOT", tmp_path)
    problems = quotes.run(write=False)
    assert len(problems) == 1 and problems[0].startswith(f"solutions/{name}, cell ")
    assert f"{wrong}, but reference gives {first['number']}" in problems[0]
    assert quotes.run(write=True) == problems
    assert solution.read_text() == right
    assert (tmp_path / "notebooks" / name).read_text() == (ROOT / "notebooks" / name).read_text()
    assert quotes.run(write=False) == []


def test_expressions_compute_from_the_rows(sources):
    ref = sources["reference"]
    rows = ref.rows
    assert quotes.evaluate(f'value("{R}", "mIoU")', ref) == pytest.approx(100 * rows[R].miou)
    assert quotes.evaluate('lead("FCN-8s", "mIoU", "min")', ref) == pytest.approx(min(
        100 * (a - b) for a, b in zip(rows[R].miou_per_seed, rows["FCN-8s"].miou_per_seed)))
    assert quotes.evaluate(f'-margin("FCN-8s") + 2 * spread("{R}", "dot")', ref) == pytest.approx(
        100 * (rows[R].miou - rows["FCN-8s"].miou) + 200 * rows[R].iou_std[4])
    assert quotes.evaluate(f'value("{R}", "gflops") / value("FCN-8s", "gflops")', ref) == (
        pytest.approx(rows[R].gflops / rows["FCN-8s"].gflops))


def test_overtakes_is_the_step_from_which_a_model_stays_ahead(sources):
    ref = sources["reference"]
    step = quotes.evaluate(f'overtakes("{R}", "FCN-8s")', ref)
    mine, theirs = ref.rows[R].curves, ref.rows["FCN-8s"].curves
    steps = mine[0]["step"]

    def ahead(i):
        return sum(a["miou"][i] - b["miou"][i] for a, b in zip(mine, theirs)) > 0

    i = steps.index(step)
    assert all(ahead(k) for k in range(i, len(steps))) and (i == 0 or not ahead(i - 1))
    assert quotes.evaluate(f'overtakes("{R}", "FCN-8s", every_seed=True)', ref) >= step


@pytest.mark.parametrize("like, value, text", [("+0.3", 0.26, "+0.3"), ("-0.4", -0.44, "-0.4"),
                                               ("2.86", 2.8595, "2.86"), ("918", 918.4, "918")])
def test_a_number_keeps_the_decimals_and_sign_of_the_text(like, value, text):
    assert quotes.formatted(value, like) == text


@pytest.mark.parametrize("text, message", [
    ('x <!-- quote: lead("FCN-8s") -->', "a quote marker with no number right before it"),
    ('1.0<!-- quote: lead("FCN-4s") -->', "reference has no model 'FCN-4s'"),
    ('1.0<!-- quote: lead("FCN-8s", "lines") -->', "unknown metric 'lines'"),
    ('1.0<!-- quote: __import__("os") -->', "is not allowed: use numbers"),
    ('1.0<!-- quote: lead("FCN-8s" -->', "is not an expression"),
    ('1.0<!-- quote elsewhere: lead("FCN-8s") -->', "no recorded file 'elsewhere'"),
    (f'1<!-- quote: curve("{R}", 33) -->', "has no evaluation at step 33"),
])
def test_a_bad_quote_is_one_sentence_naming_its_line(sources, text, message):
    with pytest.raises(quotes.QuoteError, match=f"^doc, line 2: .*{message}"):
        quotes.requote("first line\n" + text, sources, "doc")


def test_the_command_exits_1_with_a_line_per_disagreeing_quote(monkeypatch, capsys):
    monkeypatch.setattr(quotes, "run", lambda write: ["README.md, line 3: 1.0, but ..."])
    assert quotes.main([]) == 1
    assert "README.md, line 3" in capsys.readouterr().out
    monkeypatch.setattr(quotes, "run", lambda write: [])
    assert quotes.main([]) == 0
