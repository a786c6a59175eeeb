"""Every number that README.md and the notebooks quote from a recorded result agrees with its
JSON (tools/quotes.py), and a number that disagrees is found and rewritten."""

import json
import shutil
import statistics
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
    assert [m["source"] for m in quotes.TABLE.finditer(readme)] == ["reference", "quick",
                                                                    "comparison"]


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


def test_an_empty_table_is_filled_once(readme, sources):
    """A table quoted for the first time: its markers with nothing between them."""
    match = next(quotes.TABLE.finditer(readme))
    empty = readme.replace(match[0], match[0].replace(match["table"], ""), 1)
    text, problems = quotes.requote(empty, sources, "README.md")
    assert len(problems) == 1 and text == readme


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
    assert quotes.evaluate('seed("FCN-8s", "line", 2)', ref) == pytest.approx(
        100 * rows["FCN-8s"].iou_per_seed[2][3])


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
    ('1.0<!-- quote: lead("FCN-16s") -->', "reference has no model 'FCN-16s'"),
    ('1.0<!-- quote: lead("FCN-8s", "lines") -->', "unknown metric 'lines'"),
    ('1.0<!-- quote: __import__("os") -->', "is not allowed: use numbers"),
    ('1.0<!-- quote: lead("FCN-8s" -->', "is not an expression"),
    ('1.0<!-- quote elsewhere: lead("FCN-8s") -->', "no recorded file 'elsewhere'"),
    (f'1<!-- quote: curve("{R}", 33) -->', "has no evaluation at step 33"),
    (f'1<!-- quote: seed("{R}", "mIoU", 7) -->', "has no seed 7"),
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


# Per-seed records (benchmarks/coarse_paths.py, benchmarks/probes.py), quoted by file stem.
COARSE = {"command": "python benchmarks/coarse_paths.py --seeds 0 1 2", "results": {
    "default": [{"as trained": 60.0 + s, "path layer3 off": 58.5 + 2 * s, "grad layer4, end":
                 0.01 * (s + 1), "seed": s} for s in (0, 1, 2)],
    "dropout 0": [{"as trained": 61.25 + 3 * s, "path layer3 off": 55.0 - s, "seed": s}
                  for s in (0, 1, 2)],
    "one seed": [{"as trained": 50.0, "path layer3 off": float("nan"), "seed": 0}],
}}
PROBE = {"command": "python benchmarks/probes.py --probe detail", "seeds": [0, 1],
         "results": {"RefineNet": [{"1 px": 0.2 + 0.1 * s, "seed": s} for s in (0, 1)]}}


def _seeds(variant, key):
    return [r[key] for r in COARSE["results"][variant]]


@pytest.fixture
def records(tmp_path, monkeypatch):
    """A benchmarks/ folder with per-seed records (coarse_paths, probe_detail) and a file of
    another layout; ``quotes.RECORDS`` points at it."""
    folder = tmp_path / "benchmarks"
    folder.mkdir()
    (folder / "coarse_paths.json").write_text(json.dumps(COARSE))
    (folder / "probe_detail.json").write_text(json.dumps(PROBE))
    (folder / "rows.json").write_text(json.dumps([{"name": "FCN-8s", "miou": 0.5}]))
    monkeypatch.setattr(quotes, "RECORDS", folder)
    return quotes.load_sources()


def test_per_seed_records_are_sources_by_file_stem(records):
    assert [n for n in records if n not in quotes.SOURCES] == ["coarse_paths", "probe_detail"]
    assert quotes.evaluate('count("RefineNet")', records["probe_detail"]) == 2
    (quotes.RECORDS / "comparison.json").write_text(json.dumps(PROBE))  # a fixed source's name
    assert isinstance(quotes.load_sources()["comparison"], quotes.Recorded)


@pytest.mark.parametrize("expr, expected", [
    ('mean("default", "as trained")', statistics.fmean(_seeds("default", "as trained"))),
    ('std("dropout 0", "path layer3 off")', statistics.stdev(_seeds("dropout 0",
                                                                      "path layer3 off"))),
    ('lowest_seed("dropout 0", "as trained")', min(_seeds("dropout 0", "as trained"))),
    ('seed("dropout 0", "as trained", 1)', _seeds("dropout 0", "as trained")[1]),
    ('highest_seed("default", "grad layer4, end")', max(_seeds("default", "grad layer4, end"))),
    ('drop("default", "path layer3 off")', statistics.fmean(_seeds("default", "as trained"))
     - statistics.fmean(_seeds("default", "path layer3 off"))),
    ('diff("dropout 0", "default", "path layer3 off")', statistics.fmean(
        a - b for a, b in zip(_seeds("dropout 0", "path layer3 off"),
                              _seeds("default", "path layer3 off")))),
    ('count("default") + min(1, 2)', len(COARSE["results"]["default"]) + 1),
])
def test_per_seed_functions_compute_from_the_records(records, expr, expected):
    assert quotes.evaluate(expr, records["coarse_paths"]) == pytest.approx(expected)


def test_a_wrong_per_seed_quote_is_found_with_its_line_and_rewritten(records, tmp_path,
                                                                      monkeypatch):
    expr = 'drop("dropout 0", "path layer3 off")'
    right_value = quotes.evaluate(expr, records["coarse_paths"])
    right = (f'Switched off:\nlayer3 costs {right_value:.1f}<!-- quote coarse_paths: {expr} -->'
             f' (seeds: {len(COARSE["results"]["dropout 0"])}<!-- quote coarse_paths: '
             f'count("dropout 0") -->)\n')
    wrong = f"{right_value + 1:.1f}"
    (tmp_path / "README.md").write_text(right.replace(f"{right_value:.1f}", wrong))
    monkeypatch.setattr(quotes, "ROOT", tmp_path)
    problems = quotes.run(write=False)
    assert problems == [f"README.md, line 2: {wrong}, but coarse_paths gives "
                        f"{right_value:.1f} ({expr})"]
    assert quotes.main([]) == 1
    assert quotes.run(write=True) == problems
    assert (tmp_path / "README.md").read_text() == right
    assert quotes.run(write=False) == []


@pytest.mark.parametrize("text, message", [
    ('1.0<!-- quote coarse_paths: mean("dropout 0.5", "as trained") -->',
     r"coarse_paths has no variant 'dropout 0.5' \(it has \['default', 'dropout 0', 'one seed'"),
    ('1.0<!-- quote coarse_paths: drop("dropout 0", "path layer4 off") -->',
     r"'dropout 0' has no 'path layer4 off' in seeds \[0, 1, 2\] \(it has \['as trained', "),
    ('1.0<!-- quote probe_scale: mean("RefineNet", "all") -->',
     r"no recorded file 'probe_scale' \(nor per-seed records benchmarks/probe_scale.json\); "
     r"choose one of \['reference', 'quick', 'comparison', 'quick_fp32', 'quick_batch4', "
     r"'coarse_paths', 'probe_detail'\]"),
    ('1.0<!-- quote coarse_paths: std("one seed", "as trained") -->',
     "needs two seeds or more, and 'one seed' has 1"),
    ('1.0<!-- quote coarse_paths: mean("one seed", "path layer3 off") -->',
     r"'one seed' has no number for 'path layer3 off' in seeds \[0\]"),
    ('1.0<!-- quote coarse_paths: diff("one seed", "default", "as trained") -->',
     r"'one seed' has seeds \[0\] and 'default' \[0, 1, 2\]: diff pairs the same seeds"),
    ('1.0<!-- quote coarse_paths: value("default", "as trained") -->', "is not allowed"),
    ("<!-- begin quote coarse_paths table -->\n<!-- end quote -->",
     r"coarse_paths has no table; tables quote \['reference', 'quick', 'comparison'\]"),
])
def test_a_bad_per_seed_quote_is_one_sentence_naming_its_line(records, text, message):
    with pytest.raises(quotes.QuoteError, match=f"^doc, line 2: .*{message}"):
        quotes.requote("first line\n" + text, records, "doc")


def test_a_record_that_is_not_json_is_one_line(records, tmp_path, monkeypatch, capsys):
    (quotes.RECORDS / "probe_scale.json").write_text('{"results": {')
    (tmp_path / "README.md").write_text("no quotes\n")
    monkeypatch.setattr(quotes, "ROOT", tmp_path)
    assert quotes.main([]) == 2
    err = capsys.readouterr().err
    assert err.startswith("quotes: ") and "probe_scale.json is not JSON" in err
    assert err.count("\n") == 1
