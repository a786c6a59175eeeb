"""The command line, run as a user runs it: every dataset and option, config files, and one
clear error for every bad input, before any training starts."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from rnlib.checkpoint import load_checkpoint
from rnlib.cli import main
from rnlib.cli.options import parse_value
from rnlib.compare import HEADLINE
from rnlib.data.sources import VOC_CLASSES

TINY = ["--steps", "2", "--batch-size", "2", "--set", "crop=32"]


@pytest.fixture(autouse=True)
def full_budget(monkeypatch):
    monkeypatch.setenv("RNLIB_BUDGET_SCALE", "1")


def _pictures(base: Path, names, classes: int, image_dir="images", mask_dir="masks",
              sizes=((37, 29), (41, 33), (30, 30))):
    """Images of odd, mixed sizes with masks holding every label 0..classes-1."""
    (base / image_dir).mkdir(parents=True, exist_ok=True)
    (base / mask_dir).mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        w, h = sizes[i % len(sizes)]
        rng = np.random.default_rng(i)
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(
            base / image_dir / f"{name}.jpg")
        mask = (np.arange(h * w).reshape(h, w) * classes // (h * w)).astype(np.uint8)
        Image.fromarray(mask, mode="L").save(base / mask_dir / f"{name}.png")


@pytest.fixture
def folder(tmp_path):
    """A folder dataset of 3 classes named in classes.txt, with no split folders of its own."""
    root = tmp_path / "mine"
    _pictures(root, [f"img{i:02d}" for i in range(12)], 3)
    (root / "classes.txt").write_text("sky\nroad\ncar\n")
    return root


@pytest.fixture
def fake_voc(tmp_path):
    base = tmp_path / "voc" / "VOCdevkit" / "VOC2012"
    names = [f"2007_{i:06d}" for i in range(6)]
    _pictures(base, names, 21, image_dir="JPEGImages", mask_dir="SegmentationClass")
    (base / "ImageSets" / "Segmentation").mkdir(parents=True)
    (base / "ImageSets" / "Segmentation" / "train.txt").write_text("\n".join(names[:4]))
    (base / "ImageSets" / "Segmentation" / "val.txt").write_text("\n".join(names[4:]))
    return tmp_path / "voc"


def test_python_m_rnlib_help():
    out = subprocess.run([sys.executable, "-m", "rnlib", "--help"], capture_output=True,
                         text=True, check=True).stdout
    for command in ("train", "eval", "compare", "bench", "data", "models"):
        assert command in out


def test_parse_value():
    assert parse_value("64,64") == (64, 64) and parse_value("(64, 64)") == (64, 64)
    assert parse_value("1e-3") == 1e-3 and parse_value("true") is True
    assert parse_value("conv-pool") == "conv-pool" and parse_value("none") is None


def test_models_lists_the_registry_and_options(capsys):
    main(["models", "--options"])
    out = capsys.readouterr().out
    assert "refinenet-lw" in out and "crp_blocks=4" in out and "align_corners=True" in out


def test_bench_writes_a_table(tmp_path, capsys):
    out = tmp_path / "bench.md"
    main(["bench", "--models", "fcn32s", "refinenet-lw", "--backbone", "resnet18", "--size", "64",
          "64", "--repeats", "1", "--no-memory", "--reference", "fcn32s", "--out", str(out)])
    text = out.read_text()
    assert "| fcn32s |" in text and "| refinenet-lw |" in text and "latency / fcn32s" in text
    assert text in capsys.readouterr().out + "\n"


def test_bench_measures_fcn4s_beside_fcn8s_by_default():
    from rnlib.cli import build_parser

    models = build_parser().parse_args(["bench"]).models
    assert models.index("fcn4s") == models.index("fcn8s") + 1  # the equal-output-stride control


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
    assert "mIoU" in out and "IoU per class" in out and "disc" in out
    main(["train", *common, "--out", str(tmp_path / "run"), "--resume"])  # already complete
    assert "for 2 steps" in capsys.readouterr().out


def test_every_run_flag_sets_the_config_field_its_table_names(capsys):
    import yaml

    from rnlib.cli.options import RUN_FLAGS

    values = {"int": "3", "float": "2.5"}
    argv, expected = ["train", "--print-config"], {}
    for _, flag, field, options in RUN_FLAGS:
        if field in ("dataset", "model", "backbone", "pretrained_backbone", "device"):
            continue  # names checked against what exists: their own tests
        if field and "choices" in options:
            argv += [flag, "off"]
            expected[field] = "off"
        elif field:
            kind = getattr(options.get("type"), "__name__", "int")
            argv += [flag] if options.get("action") else [flag, values[kind]]
            expected[field] = True if options.get("action") else float(values[kind])
    main(argv)
    config = yaml.safe_load(capsys.readouterr().out)
    assert {k: config[k] for k in expected} == expected


def test_print_config_round_trips_through_yaml_and_toml(tmp_path, capsys):
    main(["train", "--model", "refinenet-2cascade", "--model-option", "crp_blocks=2",
          "--model-option", "widths=32,32", "--lr", "3e-4", "--print-config"])
    printed = capsys.readouterr().out
    assert "crp_blocks: 2" in printed and "lr: 0.0003" in printed
    (tmp_path / "run.yaml").write_text(printed)
    main(["train", "--config", str(tmp_path / "run.yaml"), "--print-config"])
    assert capsys.readouterr().out == printed
    (tmp_path / "run.toml").write_text('model = "fcn8s"\nlr = 1e-2\nsteps = 7\n'
                                       '[data_options]\ncount = 50\n')
    main(["train", "--config", str(tmp_path / "run.toml"), "--lr", "0.5", "--print-config"])
    out = capsys.readouterr().out
    assert "model: fcn8s" in out and "lr: 0.5" in out and "steps: 7" in out
    assert "count: 50" in out and "widths" not in out  # a preset's decoder options stay behind


@pytest.mark.parametrize("argv,message", [
    (["--set", "lr_rate=1"], r"unknown training options \['lr_rate'\]. Known: .* lr,"),
    (["--set", "batch_size=eight"], "batch_size must be int, got 'eight'"),
    (["--lr", "-1"], "lr must be > 0"),
    (["--model-option", "widht=64,64"], "refinenet has no option 'widht'. Did you mean 'widths'"),
    (["--model-option", "widths=64"], "option widths=64 should be like its default"),
    (["--model", "fcn8s", "--model-option", "widths=64,64"], "fcn8s has no option 'widths'"),
    (["--model", "fcn9s"], "unknown model 'fcn9s'"),
    (["--set", "optimizer=adam"], "optimizer must be one of"),
    (["--set", "data_options={'sise': 3}"], "data_options has 'sise'"),
    (["--pretrained-backbone", "nowhere.pt"], "neither 'imagenet'.*nor an existing file"),
    (["--pretrained-backbone", "glyphs", "--backbone", "resnet50"], "glyphs.*are for resnet18"),
    (["--model-option", "crp_blocks"], "--model-option takes KEY=VALUE"),
    (["--dataset", "coco"], "unknown dataset 'coco'"),
    (["--preset", "cpu-quick", "--config", "missing.yaml"], "no config file at missing.yaml"),
])
def test_bad_options_are_one_clear_error_before_any_training(tmp_path, argv, message):
    with pytest.raises(SystemExit, match=message):
        main(["train", *argv, "--out", str(tmp_path / "run"), "--data-dir", str(tmp_path / "d")])
    assert not (tmp_path / "run").exists(), "nothing was trained"


def test_bad_config_file_values_are_named(tmp_path):
    (tmp_path / "bad.yaml").write_text("epochs: many\n")
    with pytest.raises(SystemExit, match="epochs must be int, got 'many'"):
        main(["train", "--config", str(tmp_path / "bad.yaml"), "--print-config"])
    (tmp_path / "bad.toml").write_text("epochs = \n")
    with pytest.raises(SystemExit, match="cannot read the config file"):
        main(["train", "--config", str(tmp_path / "bad.toml"), "--print-config"])


def readme_commands(section: str) -> list[list[str]]:
    """The ``rnlib`` command lines of the first code block after ``section`` in the README."""
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = text[text.index(section):].split("```bash\n", 1)[1].split("```", 1)[0]
    return [line.split()[1:] for line in block.splitlines() if line.startswith("rnlib ")]


def test_the_readme_trains_evaluates_and_compares_a_folder_dataset(folder, tmp_path, capsys,
                                                                   monkeypatch):
    monkeypatch.chdir(tmp_path)
    train, evaluate, compare = [[str(folder) if a == "path/to/folder" else a for a in argv]
                                for argv in readme_commands("### Your own data")]
    main(train + TINY)
    assert "trained refinenet for 2 steps" in capsys.readouterr().out
    main(evaluate + ["--scales", "0.75", "1", "--flip"])
    out = capsys.readouterr().out
    assert "sky" in out and "road" in out and "car" in out  # the dataset's own classes
    main(compare + TINY)
    report = (tmp_path / "runs" / "mine-compare" / "comparison.md").read_text()
    assert "| model | sky | road | car |" in report
    assert json.loads((tmp_path / "runs" / "mine-compare" / "comparison.json").read_text()
                      )[0]["classes"] == ["sky", "road", "car"]


def test_fake_voc_compares_with_voc_class_names(fake_voc, tmp_path):
    main(["compare", "--dataset", "voc", "--device", "cpu", "--data-dir", str(fake_voc), *TINY,
          "--out", str(tmp_path / "bench"), "--runs", str(tmp_path / "runs"),
          "--keep", str(tmp_path / "kept")])
    report = (tmp_path / "bench" / "comparison.md").read_text()
    kept = {p.parent.parent.name for p in (tmp_path / "kept").rglob("record.json")}
    assert kept == {e.model for e in HEADLINE.values()}  # --keep: every contender's run kept
    assert "| model | " + " | ".join(VOC_CLASSES) + " |" in report
    assert "metrics on the test split" in report  # VOC's test split is its val list
    rows = json.loads((tmp_path / "bench" / "comparison.json").read_text())
    assert len(rows[0]["iou"]) == 21 and rows[0]["classes"][15] == "person"


def test_a_class_count_that_does_not_fit_the_masks(folder, tmp_path):
    with pytest.raises(SystemExit, match=r"num_classes=2, but .* has 3 classes"):
        main(["train", "--dataset", str(folder), "--num-classes", "2", "--out",
              str(tmp_path / "run")])
    (folder / "classes.txt").unlink()
    with pytest.raises(SystemExit, match=r"mask holds labels \[2\] but the model has 2 classes"):
        main(["train", "--dataset", str(folder), "--num-classes", "2", "--out",
              str(tmp_path / "run")])
    with pytest.raises(SystemExit, match="does not name its classes; pass --num-classes"):
        main(["train", "--dataset", str(folder), "--out", str(tmp_path / "run")])
    assert not (tmp_path / "run").exists()


def test_a_hugging_face_dataset_without_masks(tmp_path):
    import datasets

    ds = datasets.Dataset.from_dict({"image": [Image.new("RGB", (8, 8))] * 4, "text": ["a"] * 4},
                                    features=datasets.Features({"image": datasets.Image(),
                                                                "text": datasets.Value("string")}))
    ds.save_to_disk(str(tmp_path / "hf"))
    with pytest.raises(SystemExit, match="no mask column .*mask_column="):
        main(["train", "--dataset", f"hf:{tmp_path / 'hf'}", "--num-classes", "2"])


def test_the_data_folder_is_read_when_data_is_loaded(tmp_path, monkeypatch):
    from rnlib.data import load_source

    monkeypatch.setenv("RNLIB_DATA_DIR", str(tmp_path / "late"))  # after rnlib was imported
    load_source("shapes", "train", count=4, size=16)
    assert (tmp_path / "late" / "shapes" / "train-4-16px-seed0").is_dir()


def test_data_prepares_shapes_and_names_classes(tmp_path, folder, capsys):
    main(["data", "shapes", "--count", "8", "--size", "32", "--data-dir", str(tmp_path)])
    assert "8 samples; classes: background, disc, box, line, dot" in capsys.readouterr().out
    main(["data", str(folder), "--splits", "train", "val", "test"])
    out = capsys.readouterr().out
    assert "10 samples" in out and out.count("1 samples") == 2 and "sky, road, car" in out


def test_data_shapes_writes_the_very_splits_that_training_reads(tmp_path, capsys):
    from rnlib.config import TrainConfig
    from rnlib.runs import make_source

    main(["data", "shapes", "--count", "700", "--size", "16", "--splits", "train", "val", "test",
          "--data-dir", str(tmp_path)])
    written = sorted(p.name for p in (tmp_path / "shapes").iterdir())
    config = TrainConfig(data_options={"count": 700, "size": 16, "root": str(tmp_path)})
    read = sorted(make_source(config, s).name.removeprefix("shapes/")
                  for s in ("train", "val", "test"))
    assert written == read, (written, read)
    assert "val-70-16px-seed0" in written  # a tenth of the training images
    assert capsys.readouterr().out.count("70 samples") == 2


def test_ctrl_c_ends_with_one_line_a_checkpoint_and_status_130(tmp_path):
    run = tmp_path / "run"
    command = [sys.executable, "-m", "rnlib", "train", "--model", "fcn32s", "--steps", "10000",
               "--count", "16", "--batch-size", "2", "--set", "crop=32", "--save-every-steps",
               "1", "--data-dir", str(tmp_path / "data"), "--out", str(run)]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "RNLIB_BUDGET_SCALE": "1"})
    deadline = time.monotonic() + 300
    while not (run / "last.pt").exists():  # the first step is done
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("rnlib train: interrupted at step")
    assert "--resume" in lines[0] and str(run / "last.pt") in lines[0]
    from rnlib.checkpoint import load_checkpoint

    step = load_checkpoint(run / "last.pt")["step"]
    assert f"holds step {step}" in lines[0]


def test_eval_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(SystemExit, match="no checkpoint at .*train first"):
        main(["eval", str(tmp_path / "nothing.pt")])


@pytest.mark.parametrize("option", ["--out", "--keep"])
def test_compare_into_unwritable_folder_fails_before_training(tmp_path, option):
    blocker = tmp_path / "file"
    blocker.write_text("")
    folders = {"--out": str(tmp_path / "bench"), option: str(blocker / "folder")}
    with pytest.raises(SystemExit, match=f"cannot write .*choose another {option}"):
        main(["compare", "--epochs", "1", "--count", "16", *sum(folders.items(), ()),
              "--runs", str(tmp_path / "runs"), "--data-dir", str(tmp_path / "data")])
    assert not (tmp_path / "runs").exists(), "nothing was trained"


def test_the_same_train_command_twice_gives_identical_checkpoints(tmp_path, capsys):
    """Weights, optimizer state and random states, bit for bit: everything is seeded."""
    argv = ["train", "--model", "refinenet", "--model-option", "widths=16,16", "--count", "40",
            "--pretrained-backbone", "glyphs", *TINY]  # RefineNet: dropout 0.5
    main(argv + ["--out", str(tmp_path / "a")])
    main(argv + ["--out", str(tmp_path / "b")])
    a, b = (load_checkpoint(tmp_path / run / "last.pt") for run in ("a", "b"))
    flat_a, flat_b = _tensors(a), _tensors(b)
    assert flat_a.keys() == flat_b.keys() and len(flat_a) > 100
    assert all(torch.equal(flat_a[k], flat_b[k]) for k in flat_a)


def _tensors(tree, prefix="") -> dict:
    """Every tensor in a nested checkpoint, by its path."""
    if isinstance(tree, torch.Tensor):
        return {prefix: tree}
    items = tree.items() if isinstance(tree, dict) else enumerate(tree) if isinstance(
        tree, (list, tuple)) else ()
    return {k: v for key, value in items for k, v in _tensors(value, f"{prefix}/{key}").items()}
