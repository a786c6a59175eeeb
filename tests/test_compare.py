"""The comparison's contenders are built as documented."""

from dataclasses import replace
from pathlib import Path

import nbformat
import pytest

from rnlib.compare import (
    ABLATIONS,
    BASELINES,
    _config_for,
    compare,
    format_rows,
    format_times,
    run_dir,
)
from rnlib.runs import make_model
from rnlib.train import PRESETS, _settings

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name,entry", list(BASELINES.items()) + list(ABLATIONS.items()))
def test_every_contender_builds_with_the_preset(name, entry):
    config = _config_for(PRESETS["cpu-quick"], entry)
    model = make_model(config)
    if entry.refinenet_family:
        assert config.model_options["widths"] == (64, 64)
        decoder = model.decoder
        if name == "without CRP":
            assert all(len(b.pool.convs) == 0 for b in decoder.blocks)
        if name == "without RCUs":
            assert all(len(b.out) == 0 for b in decoder.blocks)
        if name.endswith("cascade"):
            assert len(decoder.blocks) == int(name[0]) if name[0].isdigit() else 4
    else:
        assert config.model_options == {}


def test_baselines_share_data_and_budget():
    base = replace(PRESETS["cpu-quick"], seed=3)
    configs = [_config_for(base, e) for e in BASELINES.values()]
    assert len({(c.dataset, str(c.data_options), c.time_budget_s, c.seed, c.lr) for c in configs}) == 1


@pytest.fixture
def tiny(tmp_path):
    base = replace(PRESETS["cpu-quick"], data_options={"count": 16, "size": 32,
                                                       "root": str(tmp_path / "data")},
                   crop=32, batch_size=4, time_budget_s=None, epochs=1)
    entries = {name: BASELINES[name] for name in ("FCN-32s", "FCN-8s")}
    return base, entries


def test_resume_reuses_finished_runs_and_retrains_other_settings(tiny, tmp_path):
    base, entries = tiny
    first = compare(base, entries, tmp_path / "runs", progress=False)
    assert [r.checkpoint for r in first] == [str(tmp_path / "runs" / m / "last.pt")
                                             for m in ("fcn32s", "fcn8s")]
    again = compare(base, entries, tmp_path / "runs", progress=False, resume=True)
    assert [r.reused for r in first] == [False, False] and [r.reused for r in again] == [True, True]
    for a, b in zip(first, again):
        assert (a.miou, a.iou, a.steps, a.train_s) == (b.miou, b.iou, b.steps, b.train_s)
    other = compare(replace(base, seed=1), entries, tmp_path / "runs", progress=False, resume=True)
    assert [r.reused for r in other] == [False, False]


def test_time_table_is_slowest_first(tiny, tmp_path):
    rows = compare(*tiny, tmp_path / "runs", progress=False)
    rows[0].total_s, rows[1].total_s = 1.0, 9.0
    table = format_times(rows)
    assert table.index("FCN-8s") < table.index("FCN-32s")
    assert "Time per model, slowest first" in format_rows(rows, tiny[0])


def test_ablation_runs_have_folders_of_their_own():
    folders = {run_dir("runs", entry) for entry in ABLATIONS.values()}
    assert len(folders) == len(ABLATIONS)
    assert run_dir("runs", ABLATIONS["without CRP"]).name == "refinenet-crp_blocks0"


@pytest.mark.parametrize("preset", ["cpu-quick", "gpu-quick"])
def test_notebook_07s_run_is_the_refinenet_that_08_and_09_reuse(preset):
    # notebook 07 trains replace(PRESETS[preset], compile=COMPILE) into runs/quick/refinenet;
    # compare(..., resume=True) in 08 and 09 must find it there with the same settings
    trained_in_07 = replace(PRESETS[preset], compile=True)
    entry = BASELINES["RefineNet (4-cascade)"]
    assert _settings(trained_in_07) == _settings(_config_for(PRESETS[preset], entry))
    assert _settings(trained_in_07) == _settings(_config_for(PRESETS[preset], ABLATIONS["RefineNet (4-cascade)"]))
    notebook = nbformat.read(ROOT / "solutions" / "07_training.ipynb", as_version=4)
    assert any(f'train(config, "{run_dir("runs/quick", entry).as_posix()}"' in c.source
               for c in notebook.cells)
