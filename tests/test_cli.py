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


def test_train_then_eval_then_resume(tmp_path, capsys):
    common = ["--model", "fcn32s", "--epochs", "1", "--count", "16", "--batch-size", "8",
              "--data-dir", str(tmp_path / "data")]
    main(["train", *common, "--out", str(tmp_path / "run")])
    assert "trained fcn32s for 2 steps" in capsys.readouterr().out
    main(["eval", str(tmp_path / "run" / "last.pt"), "--scales", "0.5", "1", "--flip"])
    out = capsys.readouterr().out
    assert "mIoU" in out and "IoU per class" in out
    main(["train", *common, "--out", str(tmp_path / "run"), "--resume"])  # already complete
    assert "for 2 steps" in capsys.readouterr().out


def test_eval_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(SystemExit, match="no checkpoint at .*train first"):
        main(["eval", str(tmp_path / "nothing.pt")])


def test_data_prepares_shapes(tmp_path, capsys):
    main(["data", "shapes", "--count", "8", "--size", "32", "--data-dir", str(tmp_path)])
    assert "8 samples" in capsys.readouterr().out
    assert (tmp_path / "shapes" / "train-8-32px-seed0").is_dir()


def test_compare_writes_table_plot_and_json(tmp_path, monkeypatch):
    import rnlib.compare as compare_module
    from rnlib.compare import Entry

    monkeypatch.setattr(compare_module, "BASELINES", {"FCN-32s": Entry("fcn32s", refinenet_family=False),
                                                      "RefineNet": Entry("refinenet")})
    main(["compare", "--epochs", "1", "--count", "16", "--data-dir", str(tmp_path / "data"),
          "--out", str(tmp_path / "bench"), "--runs", str(tmp_path / "runs")])
    text = (tmp_path / "bench" / "comparison.md").read_text()
    assert "| FCN-32s |" in text and "| RefineNet |" in text and "IoU per class" in text
    assert (tmp_path / "bench" / "comparison.png").stat().st_size > 1000
    assert (tmp_path / "bench" / "comparison.json").exists()


def test_compare_into_unwritable_folder_fails_before_training(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(SystemExit, match="cannot write .*choose another --out"):
        main(["compare", "--epochs", "1", "--count", "16", "--out", str(blocker / "bench"),
              "--runs", str(tmp_path / "runs"), "--data-dir", str(tmp_path / "data")])
    assert not (tmp_path / "runs").exists(), "nothing was trained"
