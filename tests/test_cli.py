"""The command line, run as a user runs it."""

import subprocess
import sys

import pytest

from rnlib.cli import main


def test_python_m_rnlib_help():
    out = subprocess.run([sys.executable, "-m", "rnlib", "--help"], capture_output=True, text=True,
                         check=True).stdout
    for command in ("bench", "models"):
        assert command in out


def test_models_lists_the_registry(capsys):
    main(["models"])
    assert "refinenet-lw" in capsys.readouterr().out


def test_bench_writes_a_table(tmp_path, capsys):
    out = tmp_path / "bench.md"
    main(["bench", "--models", "fcn32s", "refinenet-lw", "--backbone", "resnet18", "--size", "64",
          "64", "--repeats", "1", "--no-memory", "--reference", "fcn32s", "--out", str(out)])
    text = out.read_text()
    assert "| fcn32s |" in text and "| refinenet-lw |" in text and "latency / fcn32s" in text
    assert text in capsys.readouterr().out + "\n"


def test_bench_unknown_model_is_a_clear_error():
    with pytest.raises(SystemExit, match="unknown model 'fcn9s'"):
        main(["bench", "--models", "fcn9s", "--no-latency", "--no-memory"])


def test_bench_unwritable_output_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(SystemExit, match="cannot write"):
        main(["bench", "--models", "fcn32s", "--backbone", "resnet18", "--size", "32", "32",
              "--no-latency", "--no-memory", "--out", str(blocker / "x.md")])
