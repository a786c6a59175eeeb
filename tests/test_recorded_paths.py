"""Recorded files name runs by paths that hold on any machine: from the repository's root, or
from the recorded file's folder, never absolute (rnlib.recorded_paths)."""

import json
import re
from pathlib import Path

import pytest

from rnlib.compare import Row, rows_as_dicts
from rnlib.recorded_paths import recorded_path, repository_root, resolve_recorded
from rnlib.results import load_rows

ROOT = Path(__file__).resolve().parents[1]
RECORDED = ["rnlib/results", "benchmarks", "docs"]  # folders of committed records and tables
TEXT = {".md", ".json", ".py", ".txt", ".csv", ".yml", ".yaml", ".ipynb"}
ABSOLUTE = re.compile(r"(?<![\w.~/-])/(?:work|tmp|home|root)/")  # a machine's own folders


@pytest.fixture
def repo(tmp_path):
    """A repository (its root marked by pyproject.toml) in a folder that holds other runs."""
    root = tmp_path / "repo"
    (root / "benchmarks").mkdir(parents=True)
    (root / "pyproject.toml").write_text("")
    return root


def test_a_run_in_the_repository_is_named_from_its_root(repo, monkeypatch):
    record = repo / "rnlib" / "results" / "reference.json"
    run = repo / "benchmarks" / "reference-runs" / "refinenet" / "lr0.001-seed0" / "record.json"
    assert repository_root(record) == repo.resolve()
    assert recorded_path(run, record) == "benchmarks/reference-runs/refinenet/lr0.001-seed0/record.json"
    monkeypatch.chdir(repo)  # a run given relative to the working folder
    assert recorded_path("runs/comparison/fcn8s/last.pt", repo / "benchmarks" / "c.json") == (
        "runs/comparison/fcn8s/last.pt")
    assert resolve_recorded(recorded_path(run, record), record) == run.resolve()


def test_a_run_outside_the_repository_is_named_from_the_records_folder(repo, tmp_path):
    outside, record = tmp_path / "scratch" / "fcn8s" / "last.pt", repo / "benchmarks" / "c.json"
    assert recorded_path(outside, record) == "../../scratch/fcn8s/last.pt"
    assert resolve_recorded("../../scratch/fcn8s/last.pt", record) == outside.resolve()
    alone = tmp_path / "results" / "comparison.json"  # in no repository
    assert repository_root(alone) is None
    assert recorded_path(tmp_path / "results" / "runs" / "a.pt", alone) == "./runs/a.pt"
    assert resolve_recorded("./runs/a.pt", alone) == (tmp_path / "results" / "runs" / "a.pt").resolve()
    assert resolve_recorded("/elsewhere/a.pt", alone) == Path("/elsewhere/a.pt")  # older records


def test_rows_are_written_with_relative_paths_and_read_back_resolved(repo, tmp_path):
    run = tmp_path / "scratch" / "last.pt"
    row = Row(name="FCN-8s", model="fcn8s", lr=1e-3, split="test", seeds=[0], miou=0.5,
              miou_std=0.0, boundary_f=0.4, boundary_f_std=0.0, iou=[0.5], iou_std=[0.0],
              miou_per_seed=[0.5], plateau=None, params_m=1.0, gflops=1.0, latency_ms=1.0,
              train_peak_mib=1.0, train_s=1.0, total_s=1.0, reused=False, steps=3,
              checkpoints=[str(repo / "runs" / "last.pt"), str(run)], classes=["a"])
    record = repo / "benchmarks" / "comparison.json"
    record.write_text(json.dumps(rows_as_dicts([row], record)))
    assert json.loads(record.read_text())[0]["checkpoints"] == ["runs/last.pt",
                                                               "../../scratch/last.pt"]
    assert row.checkpoints[1] == str(run)  # the rows themselves keep their paths
    assert load_rows(record)[0].checkpoints == [str((repo / "runs" / "last.pt").resolve()),
                                                str(run.resolve())]


def test_no_committed_record_holds_an_absolute_path_of_a_machine():
    found = [f"{path.relative_to(ROOT)}:{n}"
             for folder in RECORDED for path in sorted((ROOT / folder).rglob("*"))
             if path.suffix in TEXT and "__pycache__" not in path.parts
             for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
             if ABSOLUTE.search(line)]
    assert not found, f"absolute paths of a machine (name them relative to the repository): {found}"


def test_the_shipped_reference_resolves_to_its_kept_runs():
    from rnlib.results import reference

    for row in reference():
        for path in row.checkpoints:
            assert Path(path).is_file(), path
