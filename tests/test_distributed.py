"""DistributedDataParallel under torchrun, on the CPU with gloo and 2 processes: the same
weights as one process with the whole batch, and a run stopped by Ctrl-C resumes exactly."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rnlib.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
WORKER = str(ROOT / "tests" / "distributed_worker.py")
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]


def _run(command, expect=0):
    done = subprocess.run(command, capture_output=True, text=True, timeout=600,
                          env={"RNLIB_BUDGET_SCALE": "1", "OMP_NUM_THREADS": "1",
                               "PATH": "/usr/bin:/bin"})
    assert done.returncode == expect, done.stdout + done.stderr
    return done


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory, data_dir):
    out = tmp_path_factory.mktemp("ddp") / "run"
    done = _run([*TORCHRUN, WORKER, str(out), "--data-dir", data_dir, "--batch-size", "8"])
    return load_checkpoint(out / "last.pt"), done.stderr


def _left_the_group(stderr):
    """Both processes left the gloo group before the interpreter's shutdown, where gloo's
    threads can abort a finished process (rnlib.runtime._leave_gloo_group)."""
    return stderr.count("process group at exit: left") == 2 and "at exit: joined" not in stderr


def test_two_processes_reach_the_weights_of_one_with_the_whole_batch(two_processes, data_dir,
                                                                     tmp_path):
    _run([sys.executable, WORKER, str(tmp_path / "one"), "--data-dir", data_dir,
          "--batch-size", "8"])
    one = load_checkpoint(tmp_path / "one" / "last.pt")
    two_processes, stderr = two_processes
    assert _left_the_group(stderr), stderr
    assert two_processes["step"] == one["step"] == 6
    assert two_processes["history"]["step_loss"] == pytest.approx(one["history"]["step_loss"],
                                                                  rel=1e-5)
    # gradients are summed in another order; AdamW (lr 1e-3) moves each weight by about 1e-3 a
    # step and amplifies near-zero gradients: 6 steps measured 6.3e-6 at most
    for key, value in one["model"].items():
        assert torch.allclose(two_processes["model"][key], value, rtol=0, atol=1e-5), key


def test_a_stopped_two_process_run_resumes_to_the_uninterrupted_weights(two_processes, data_dir,
                                                                         tmp_path):
    out = str(tmp_path / "cut")
    # 32 samples, 16 per process, 4 per process and step: the last process gets Ctrl-C while
    # reading the batch of step 3; both processes finish step 3 and stop there
    cut = _run([*TORCHRUN, WORKER, out, "--data-dir", data_dir, "--signal-at", "9"], expect=1)
    assert "interrupted at step 4" in cut.stderr and "holds step 3" in cut.stderr
    assert _left_the_group(cut.stderr), cut.stderr
    stopped = load_checkpoint(Path(out) / "last.pt")
    assert stopped["step"] == 3
    _run([*TORCHRUN, WORKER, out, "--data-dir", data_dir, "--resume"])
    resumed = load_checkpoint(Path(out) / "last.pt")
    assert resumed["step"] == 6
    for key, value in two_processes[0]["model"].items():
        assert torch.equal(resumed["model"][key], value), key


def test_the_batch_must_divide_among_processes(data_dir, tmp_path):
    done = _run([*TORCHRUN, WORKER, str(tmp_path / "odd"), "--data-dir", data_dir,
                 "--batch-size", "7"], expect=1)
    assert "batch_size 7 does not divide among 2 processes" in done.stderr
