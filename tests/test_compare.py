"""The comparison: contenders built as documented, the same learning-rate grid for every model
chosen on validation, several seeds with their spread, results on the test split, reuse."""

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from rnlib.compare import (
    ABLATIONS,
    BASELINES,
    GROUPS,
    HEADLINE,
    LIGHT_WEIGHT,
    KeptRun,
    compare,
    describe_data,
    format_margins,
    format_rows,
    format_times,
    per_seed,
    plateau,
    run_dir,
    swing,
    verdict,
)
from rnlib.config import PRESETS, with_model
from rnlib.history import History
from rnlib.runs import make_model

COMPARISON = Path(__file__).parents[1] / "benchmarks" / "comparison.json"  # rnlib compare's


def test_fcn4s_the_equal_output_stride_control_closes_the_baselines():
    assert list(BASELINES) == ["RefineNet (4-cascade)", "FCN-32s", "FCN-8s", "Dilated OS8",
                               "FCN-4s"]
    assert BASELINES["FCN-4s"].model == "fcn4s" and BASELINES["FCN-4s"].options == ()
    assert list(LIGHT_WEIGHT) == ["RefineNet (4-cascade)", "Light-Weight RefineNet"]


def test_the_headline_is_the_default_and_the_baselines_without_fcn32s():
    """rnlib compare's default and notebook 08's baselines: the comparison the course decides
    (README, "Results"); FCN-32s stays one group away (--contenders baselines)."""
    import argparse

    from rnlib.cli.compare import add_compare_command

    assert list(HEADLINE) == ["RefineNet (4-cascade)", "FCN-8s", "Dilated OS8", "FCN-4s"]
    assert all(HEADLINE[name] == BASELINES[name] for name in HEADLINE)
    assert GROUPS["headline"] is HEADLINE and "FCN-32s" in GROUPS["baselines"]
    parser = argparse.ArgumentParser()
    add_compare_command(parser.add_subparsers())
    assert parser.parse_args(["compare"]).contenders == ["headline"]


@pytest.fixture(autouse=True)
def full_budget(monkeypatch):
    monkeypatch.setenv("RNLIB_BUDGET_SCALE", "1")


@pytest.mark.parametrize("name,entry", list({**BASELINES, **LIGHT_WEIGHT, **ABLATIONS}.items()))
def test_every_contender_builds_with_the_preset(name, entry):
    config = replace(with_model(PRESETS["cpu-quick"], entry.model, entry.options), num_classes=5)
    model = make_model(config)
    if entry.model.startswith("refinenet"):
        assert config.model_options["widths"] == (64, 64)  # the preset's decoder serves them all
        decoder = model.decoder
        if name == "without CRP":
            assert all(len(b.pool.convs) == 0 for b in decoder.blocks)
        if name == "without RCUs":
            assert all(len(b.out) == 0 for b in decoder.blocks)
        if name.endswith("cascade"):
            assert len(decoder.blocks) == int(name[0]) if name[0].isdigit() else 4
    else:
        assert config.model_options == {}


def test_contenders_share_data_budget_backbone_and_seed():
    base = replace(PRESETS["cpu-quick"], seed=3)
    configs = [with_model(base, e.model, e.options) for e in {**BASELINES, **ABLATIONS}.values()]
    assert len({(c.dataset, str(c.data_options), c.epochs, c.steps, c.seed, c.lr,
                 c.pretrained_backbone, c.backbone) for c in configs}) == 1


@pytest.fixture
def tiny(tmp_path):
    base = replace(PRESETS["cpu-quick"], data_options={"count": 16, "size": 32,
                                                       "root": str(tmp_path / "data")},
                   crop=32, batch_size=4, steps=3, eval_every_steps=1)
    entries = {name: BASELINES[name] for name in ("FCN-32s", "FCN-8s")}
    return base, entries


def test_seeds_and_a_learning_rate_grid_chosen_on_validation(tiny, tmp_path):
    base, entries = tiny
    rows = compare(base, entries, tmp_path / "runs", seeds=[0, 1], lr_grid=[1e-4, 1e-2],
                   progress=False)
    for row in rows:
        assert row.split == "test" and row.seeds == [0, 1] and len(row.miou_per_seed) == 2
        assert set(row.lr_search) == {"0.0001", "0.01"}
        assert row.lr == max((1e-4, 1e-2), key=lambda lr: row.lr_search[f"{lr:g}"])
        assert row.miou == pytest.approx(sum(row.miou_per_seed) / 2)
        assert row.classes == ["background", "disc", "box", "line", "dot"]
        assert [c.split("/")[-2] for c in row.checkpoints] == [f"lr{row.lr:g}-seed0",
                                                               f"lr{row.lr:g}-seed1"]
    text = format_rows(rows, base)
    assert "±" in text and "Validation mIoU of each learning rate" in text
    margins = format_margins(rows, "FCN-32s", ["mIoU", "boundary F", "line"]).splitlines()[2:]
    fcn8, fcn32 = rows[1], rows[0]
    line = [100 * (a[3] - b[3]) for a, b in zip(fcn8.iou_per_seed, fcn32.iou_per_seed)]
    assert [m.split(" | ")[:3] for m in margins] == [
        ["| FCN-8s", metric, f"{sum(d) / 2:+.1f}"] for metric, d in (
            ("mIoU", [100 * (a - b) for a, b in zip(fcn8.miou_per_seed, fcn32.miou_per_seed)]),
            ("boundary F", [100 * (a - b) for a, b in zip(fcn8.boundary_f_per_seed,
                                                           fcn32.boundary_f_per_seed)]),
            ("line", line))]
    assert per_seed(fcn8, "line") == [iou[3] for iou in fcn8.iou_per_seed]
    with pytest.raises(ValueError, match="unknown metric 'lines'.*line"):
        per_seed(fcn8, "lines")


def test_resume_reuses_finished_runs_and_retrains_other_settings(tiny, tmp_path):
    base, entries = tiny
    first = compare(base, entries, tmp_path / "runs", progress=False)
    assert [r.checkpoints for r in first] == [
        [str(run_dir(tmp_path / "runs", e, base.lr, 0) / "last.pt")] for e in entries.values()]
    again = compare(base, entries, tmp_path / "runs", progress=False, resume=True)
    assert [r.reused for r in first] == [False, False] and [r.reused for r in again] == [True, True]
    for a, b in zip(first, again):
        assert (a.miou, a.iou, a.steps, a.train_s) == (b.miou, b.iou, b.steps, b.train_s)
    other = compare(replace(base, seed=1), entries, tmp_path / "runs", progress=False, resume=True)
    assert [r.reused for r in other] == [False, False]


def test_kept_runs_stand_in_for_their_checkpoints(tiny, tmp_path):
    """A finished run kept as a record (settings, curves, metrics; no weights) gives the same
    row once its checkpoint is gone; a record of other settings, or without the metrics asked
    for, is not taken for the run."""
    base, entries = tiny
    runs, kept = tmp_path / "runs", tmp_path / "kept"
    first = compare(base, entries, runs, lr_grid=[1e-4, 1e-2], progress=False, kept=kept)
    shutil.rmtree(runs)
    again = compare(base, entries, runs, lr_grid=[1e-4, 1e-2], progress=False, resume=True,
                    kept=kept)
    assert [r.reused for r in again] == [True, True] and not list(runs.rglob("last.pt"))
    for a, b in zip(first, again):
        assert (a.lr, a.lr_search, a.miou, a.iou, a.boundary_f, a.curves, a.train_s,
                a.params_m) == (b.lr, b.lr_search, b.miou, b.iou, b.boundary_f, b.curves,
                                b.train_s, b.params_m)
        assert b.checkpoints == [str(run_dir(kept, entries[b.name], b.lr, 0) / "record.json")]
    with pytest.raises(FileNotFoundError, match="keeps this run's curves but not its metrics"):
        compare(base, entries, runs, lr_grid=[1e-4, 1e-2], split="val", progress=False,
                resume=True, kept=kept)
    other = compare(replace(base, seed=1), entries, runs, progress=False, resume=True, kept=kept)
    assert [r.reused for r in other] == [False, False]
    record = run_dir(kept, entries["FCN-32s"], base.lr, 1) / "record.json"
    record.write_text("{ half a file")
    with pytest.raises(ValueError, match="is not a kept run's record.*delete it"):
        KeptRun.load(record.parent, base)


def test_time_table_is_slowest_first(tiny, tmp_path):
    rows = compare(*tiny, tmp_path / "runs", progress=False)
    rows[0].total_s, rows[1].total_s = 1.0, 9.0
    table = format_times(rows)
    assert table.index("FCN-8s") < table.index("FCN-32s")
    assert "Time per model, slowest first" in format_rows(rows, tiny[0])


def test_plateau_is_the_trend_of_the_seeds_mean_over_the_last_fifth_and_swing_its_jumps():
    history = History(eval_step=[10, 50, 80, 90, 100], val_miou=[0.1, 0.5, 0.58, 0.55, 0.585])
    assert plateau([history]) == pytest.approx(0.005)  # 80, 90 and 100 are in the last 20%
    assert swing([history]) == pytest.approx(0.035)  # the dip at 90
    falling = History(eval_step=[10, 50, 80, 90, 100], val_miou=[0.1, 0.5, 0.62, 0.61, 0.6])
    assert plateau([falling]) == pytest.approx(-0.02)
    assert plateau([history, falling]) == pytest.approx(-0.0075)  # the mean of the seeds
    assert swing([history, falling]) == pytest.approx(0.0125)  # means 0.6, 0.58, 0.5925
    for none in ([History(eval_step=[100], val_miou=[0.5])], [History()]):
        assert plateau(none) is None and swing(none) is None


def test_the_committed_quick_comparison_is_that_of_the_default_budget():
    """benchmarks/comparison.json is what ``rnlib compare`` gives with its defaults (the
    cpu-quick preset): a change of the preset's budget or data must come with a new
    recording."""
    rows = json.loads(COMPARISON.read_text())
    assert [r["name"] for r in rows] == list(HEADLINE)
    assert {r["steps"] for r in rows} == {PRESETS["cpu-quick"].steps}
    assert {r["lr"] for r in rows} == {PRESETS["cpu-quick"].lr}
    made = COMPARISON.with_suffix(".md").read_text()
    assert f"Data: {describe_data(PRESETS['cpu-quick'])};" in made


def test_the_committed_comparison_is_seed_0_of_the_quick_regime_to_the_last_bit():
    """On one kind of processor a run's digits depend only on its settings and its one thread,
    not on the machine's cores or on the runs beside it: rnlib compare (one seed, two runs side
    by side) gave exactly what benchmarks/reference.py --regime quick recorded for seed 0 on the
    same AMD EPYC (README, "The course's own runs decide")."""
    from rnlib.results import quick

    recorded = {r.name: r for r in quick()}
    rows = json.loads(COMPARISON.read_text())
    for row in rows:
        seed0 = recorded[row["name"]].seeds.index(0)
        assert row["miou"] == recorded[row["name"]].miou_per_seed[seed0], row["name"]
        assert row["boundary_f"] == recorded[row["name"]].boundary_f_per_seed[seed0]
        assert row["iou"] == recorded[row["name"]].iou_per_seed[seed0]


def test_the_recorded_reference_has_every_contender_three_seeds_and_the_grid():
    """The reference that notebooks 08, 09 and the README quote (benchmarks/reference.py):
    every contender, three seeds, the same grid chosen on validation, results on test, and
    the trend and swing of each model's last 20% of steps, as its curves give them. Every
    model trained for the reference preset's whole budget, and its mIoU (the mean of its seeds)
    moved less than 1 point over its last 20% (README, "Results": trained to a plateau)."""
    from rnlib.results import reference

    rows = reference()
    assert {r.name for r in rows} == set(BASELINES) | set(ABLATIONS)
    for r in rows:
        assert r.seeds == [0, 1, 2] and r.split == "test" and len(r.iou_per_seed) == 3
        assert set(r.lr_search) == {"0.0003", "0.001"}
        assert r.lr == max((3e-4, 1e-3), key=lambda lr: r.lr_search[f"{lr:g}"])
        curves = [History(eval_step=c["step"], val_miou=c["miou"]) for c in r.curves]
        assert r.plateau == pytest.approx(plateau(curves))
        assert r.swing == pytest.approx(swing(curves)) and r.swing >= abs(r.plateau)
        assert r.steps == 1000, r.name  # the reference preset: 4 epochs of 250 steps
        assert all(c["step"][-1] == r.steps for c in r.curves), r.name
        assert abs(r.plateau) < 0.01, r.name


@pytest.mark.parametrize("regime, record", [("quick", "rnlib/results/quick.json"),
                                            ("quick_fp32", "benchmarks/quick_fp32.json")])
def test_the_recorded_quick_regime_is_the_courses_preset_with_three_seeds(regime, record):
    """rnlib/results/quick.json (benchmarks/reference.py --regime quick), which notebooks 08
    and 09 read a student's run against, and its float32 twin (--regime quick_fp32), which the
    README sets against it: every contender, seeds 0-2, the cpu-quick budget and data."""
    from rnlib.results import load_rows

    root = Path(__file__).parents[1]
    rows = load_rows(root / record)
    assert {r.name for r in rows} == set(BASELINES) | set(LIGHT_WEIGHT) | set(ABLATIONS)
    for r in rows:
        assert r.seeds == [0, 1, 2] and r.split == "test" and len(r.miou_per_seed) == 3
        assert r.steps == PRESETS["cpu-quick"].steps and r.lr == PRESETS["cpu-quick"].lr
    made = (root / "benchmarks" / f"{regime}.md").read_text()
    assert f"Data: {describe_data(PRESETS['cpu-quick'])};" in made


def _with_mious(row, mious):
    return replace(row, miou=sum(mious) / len(mious), miou_per_seed=list(mious),
                   seeds=list(range(len(mious))))


def test_verdict_decides_only_where_every_recorded_seed_and_your_run_agree():
    from rnlib.results import reference

    ref = {r.name: r for r in reference()}
    claim, other = ref["RefineNet (4-cascade)"], ref["FCN-8s"]
    recorded = [_with_mious(claim, [0.60, 0.62, 0.61]), _with_mious(other, [0.50, 0.52, 0.61])]
    mine = [_with_mious(claim, [0.58]), _with_mious(other, [0.50])]
    line = verdict(mine, recorded)
    assert "FCN-8s +8.0 (recorded +6.7, +0.0 .. +10.0 over 3 seeds)" in line  # a tie in seed 2
    assert "Not decided: 1 of 1" in line
    recorded[1] = _with_mious(other, [0.50, 0.52, 0.55])
    assert "Decided: every lead holds" in verdict(mine, recorded)
    assert "Not decided" in verdict([mine[0], _with_mious(other, [0.59])], recorded)  # sign flips
    line = verdict(mine, recorded[:1])  # the other model is not in the record
    assert "(not recorded)" in line and "Not decided" in line
    assert "Not decided" in verdict([mine[0], _with_mious(other, [0.58])], recorded)  # a tie
    with pytest.raises(ValueError, match=r"your rows have no 'RefineNet \(4-cascade\)'.*claim="):
        verdict([mine[1]], recorded)
