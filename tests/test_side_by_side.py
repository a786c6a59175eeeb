"""Runs side by side (rnlib.side_by_side): one-thread processes give the digits of one-thread runs
one after another; a signal stops them all with their checkpoints; errors come back whole."""

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from rnlib.compare import BASELINES, LIGHT_WEIGHT, compare, run_dir
from rnlib.config import PRESETS, TrainConfig
from rnlib.runs import train
from rnlib.runtime import cpu_threads
from rnlib.side_by_side import processes_for
from rnlib.train import NonFiniteLossError


@pytest.fixture(autouse=True)
def full_budget(monkeypatch):
    monkeypatch.setenv("RNLIB_BUDGET_SCALE", "1")


@pytest.fixture
def tiny(tmp_path):
    base = replace(PRESETS["cpu-quick"], data_options={"count": 16, "size": 32,
                                                       "root": str(tmp_path / "data")},
                   crop=32, batch_size=4, steps=3)
    return base, {name: BASELINES[name] for name in ("FCN-32s", "FCN-8s")}


def test_every_cpu_preset_computes_on_one_thread_and_the_gpu_preset_on_torchs_default():
    assert {name: PRESETS[name].threads for name in PRESETS} == {
        "cpu-quick": 1, "cpu-probe": 1, "reference": 1, "gpu-quick": None, "gpu": None}


def test_side_by_side_runs_give_the_digits_of_runs_one_after_another(tiny, tmp_path):
    base, entries = tiny
    together = compare(base, entries, tmp_path / "a", seeds=[0, 1], processes=2, progress=False)
    apart = compare(base, entries, tmp_path / "b", seeds=[0, 1], processes=1, progress=False)
    for a, b in zip(together, apart):
        assert a.miou_per_seed == b.miou_per_seed and a.iou_per_seed == b.iou_per_seed
        assert not a.reused and a.total_s > 0 and a.steps == 3
    again = compare(base, entries, tmp_path / "a", seeds=[0, 1], resume=True, progress=False)
    assert all(r.reused for r in again)
    assert [r.miou_per_seed for r in again] == [r.miou_per_seed for r in together]


def test_how_many_processes_follows_the_threads_the_cores_and_the_device(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    quick = PRESETS["cpu-quick"]
    assert processes_for(quick, runs=9) == 4
    assert processes_for(quick, runs=3) == 3
    assert processes_for(replace(quick, threads=None), runs=9) == 1  # torch's threads: one run
    assert processes_for(replace(quick, threads=2), runs=9) == 1
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert processes_for(quick, runs=9) == 1  # under torchrun: the ranks share the machine
    monkeypatch.delenv("WORLD_SIZE")
    monkeypatch.setattr("rnlib.side_by_side.choose_device", lambda name: torch.device("cuda"))
    assert processes_for(quick, runs=9) == 1  # one GPU: one run at a time


def test_a_bad_process_count_is_refused_before_any_work(tiny, tmp_path):
    base, entries = tiny
    with pytest.raises(ValueError, match="processes must be >= 1"):
        compare(base, entries, tmp_path / "runs", processes=0, progress=False)
    assert not (tmp_path / "runs").exists()


def test_a_runs_own_error_comes_back_from_its_process(tiny, tmp_path):
    base, entries = tiny
    with pytest.raises(NonFiniteLossError, match="lower learning rate"):
        compare(replace(base, lr=1e30, warmup_steps=0, steps=6), entries, tmp_path / "runs",
                processes=2, progress=False)


def test_a_run_computes_on_its_configs_threads_and_gives_the_threads_back(tiny, tmp_path):
    base, _ = tiny
    seen = []
    hook = torch.nn.modules.module.register_module_forward_pre_hook(
        lambda module, inputs: seen.append(torch.get_num_threads()))
    try:
        with cpu_threads(2):
            train(base, tmp_path / "run", progress=False)
            assert torch.get_num_threads() == 2
    finally:
        hook.remove()
    assert set(seen) == {1}
    seen = []
    with cpu_threads(2):
        with cpu_threads(1):
            seen.append(torch.get_num_threads())
        seen.append(torch.get_num_threads())
        with cpu_threads(None):
            seen.append(torch.get_num_threads())
    assert seen == [1, 2, 2]


def _cli(*args, cwd):
    return subprocess.Popen([sys.executable, "-m", "rnlib", "compare", *args], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "RNLIB_BUDGET_SCALE": "1"},
                            start_new_session=True)


def test_a_signal_stops_every_run_side_by_side_with_its_checkpoint_and_resume_ends_them(
        tmp_path):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"data_options": {"count": 16, "size": 32,
                                                   "root": str(tmp_path / "data")},
                                  "crop": 32, "batch_size": 4, "steps": 150}))
    flags = ["--config", str(config), "--runs", str(tmp_path / "runs"), "--out",
             str(tmp_path / "out"), "--processes", "2", "--contenders", "light-weight",
             "--name", "lw"]
    process = _cli(*flags, cwd=tmp_path)
    folders = [run_dir(tmp_path / "runs" / "lw", entry, 1e-3, 0)
               for entry in LIGHT_WEIGHT.values()]
    deadline = time.monotonic() + 120
    while sum((f / ".lock").exists() for f in folders) < 2:
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.2)
    time.sleep(3)  # both runs are in their steps
    process.send_signal(signal.SIGTERM)  # what a scheduler sends, to this process alone
    out, err = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert "2 runs side by side stopped at their current steps" in lines[-1]
    assert "0 of 2 had finished" in lines[-1] and "--resume" in lines[-1]
    steps = [torch.load(f / "last.pt", weights_only=False)["step"] for f in folders]
    assert all(0 < s < 150 for s in steps)  # both stopped whole, at their own steps
    resumed = _cli(*flags, "--resume", cwd=tmp_path)
    out, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err
    rows = json.loads((tmp_path / "out" / "lw.json").read_text())
    assert [r["steps"] for r in rows] == [150, 150]


def test_records_made_before_the_threads_field_still_stand_for_their_runs():
    """Checkpoints, kept records and metric caches written before TrainConfig.threads existed
    lack the key; they are the same runs (the reference's kept records must not retrain)."""
    from rnlib.checkpoint import run_settings, same_settings

    config = PRESETS["cpu-quick"]
    old = {k: v for k, v in run_settings(config).items() if k != "threads"}
    assert same_settings(old, config) and same_settings(run_settings(config), config)
    assert same_settings(old, replace(config, threads=None))  # how a run runs, not what
    assert not same_settings({**old, "lr": 0.5}, config) and not same_settings(None, config)
    kept = next((Path(__file__).parents[1] / "benchmarks" / "reference-runs").rglob("record.json"))
    settings = json.loads(kept.read_text())["settings"]
    assert "threads" not in settings
    config = TrainConfig.from_dict({k: v for k, v in settings.items() if k != "budget_scale"})
    assert same_settings(settings, config)


@pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG is Linux's")
def test_runs_die_with_a_killed_parent(tmp_path):
    """A grader kills a kernel past its limit; its runs side by side must not train on."""
    script = tmp_path / "parent.py"
    script.write_text(
        "import time\n"
        "from rnlib.side_by_side import run_side_by_side\n"
        "if __name__ == '__main__':\n"
        "    run_side_by_side(time.sleep, [(600,), (600,)], 2)\n")
    parent = subprocess.Popen([sys.executable, str(script)], cwd=tmp_path)
    deadline = time.monotonic() + 60
    while len(_children(parent.pid)) < 2:
        assert parent.poll() is None and time.monotonic() < deadline
        time.sleep(0.2)
    workers = _children(parent.pid)
    time.sleep(5)  # both are in their jobs by now; one that starts after its parent died exits
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 20
    while any(_alive(pid) for pid in workers):
        assert time.monotonic() < deadline, "a run outlived its killed parent"
        time.sleep(0.2)


def _children(pid):
    """The spawned workers of process ``pid`` (its resource tracker left out)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = open(f"/proc/{entry}/stat").read().rsplit(")", 1)[1].split()
                cmd = open(f"/proc/{entry}/cmdline").read()
            except OSError:
                continue
            if int(stat[1]) == pid and "spawn_main" in cmd:
                found.append(int(entry))
    return found


def _alive(pid):
    try:
        state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
