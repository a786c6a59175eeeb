"""The benchmark scripts run end to end, at toy sizes (their numbers are not checked here).

The throughput table is the one recorded on a GPU; run on the CPU it takes the same code path
apart from CUDA's own calls, so a script that breaks is found without a GPU.
"""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

SPEED = Path(__file__).resolve().parents[1] / "benchmarks" / "speed.py"


def _speed(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SPEED), *args], capture_output=True, text=True,
                          timeout=600)


@pytest.mark.parametrize("mode,expected", [
    ("throughput", ["| FCN-8s-50 |", "train AMP / fp32", "AMP is bfloat16"]),
    ("latency", ["| FCN-8s-50 |", "share of ceiling", "GFLOP/s"]),
    ("recipe", ["AdamW fused (rnlib)", "speed-up", "| NCHW, AdamW for-each |"]),
])
def test_speed_script_writes_its_table(mode, expected, tmp_path):
    out = tmp_path / f"{mode}.md"
    rows = [] if mode == "recipe" else ["--models", "FCN-8s-50"]  # recipe: the CPU preset
    done = _speed("--mode", mode, *rows, "--size", "32", "--batch", "2", "--repeats", "1",
                  "--out", str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    text = out.read_text()
    for fragment in expected:
        assert fragment in text, (fragment, text)
    assert f"speed.py --mode {mode}" in text  # the command that reproduces it


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown without a GPU")
def test_cuda_without_a_gpu_says_so():
    done = _speed("--device", "cuda")
    assert done.returncode == 2 and "no CUDA GPU" in done.stderr
