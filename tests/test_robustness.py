"""Nothing lost under concurrent use, full disks and bad settings (issue #24): each case that an
operator met is re-run here, and ends in one line, a non-zero exit and whole files.

One run per folder (two real processes), no silent overwrite, resume rules, outputs that would
replace inputs, NaN and out-of-range settings, memory estimates, a full or read-only disk
(simulated by patching the write: the tests run as root, whom chmod does not stop), racing
dataset generation, changed data on resume, signals, FIFOs, and one-line errors.
"""

import errno
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from test_cli import TINY, _pictures
from test_train import _config, _trainer, data  # noqa: F401 -- data is a fixture

from rnlib import atomic, build_model
from rnlib.budget import budget_scale
from rnlib.checkpoint import load_checkpoint, save_checkpoint
from rnlib.cli import main
from rnlib.config import TrainConfig, plain
from rnlib.data import DataError
from rnlib.data import sources as data_sources
from rnlib.data.sources import FileSource, folder, shapes
from rnlib.rundir import RunLock
from rnlib.train import NonFiniteLossError, TrainingInterrupted

RUN = ["--model", "fcn32s", "--count", "16", *TINY]  # a run of seconds


@pytest.fixture(autouse=True)
def full_budget(monkeypatch):
    monkeypatch.setenv("RNLIB_BUDGET_SCALE", "1")


def _one_line_exit(argv, match):
    """``rnlib ARGV`` stops with one line that matches ``match`` (SystemExit with a message)."""
    with pytest.raises(SystemExit) as stop:
        main(argv)
    message = str(stop.value.code)
    assert "\n" not in message and "Traceback" not in message, message
    assert re.search(match, message), message
    return message


def _cli(*args) -> list[str]:
    return [sys.executable, "-m", "rnlib", *args]


def _env() -> dict:
    return {**os.environ, "RNLIB_BUDGET_SCALE": "1", "OMP_NUM_THREADS": "1",
            "PYTHONPATH": str(Path(__file__).resolve().parents[1])}


def _no_temporary_files(folder: Path) -> bool:
    return not [p for p in folder.rglob("*") if p.name.endswith((".tmp", ".partial"))]


# -- one run per folder, no silent overwrite --------------------------------------------------

def test_a_second_run_into_a_busy_folder_is_refused_and_the_first_keeps_a_checkpoint(tmp_path):
    run, data_dir = tmp_path / "run", str(tmp_path / "data")
    first = subprocess.Popen(_cli("train", *RUN, "--steps", "100000", "--save-every-steps", "1",
                                  "--data-dir", data_dir, "--out", str(run)),
                             stderr=subprocess.PIPE, text=True, env=_env())
    deadline = time.monotonic() + 300  # a loaded machine starts Python slowly
    while not (run / "last.pt").exists():  # the first run trains, holding the folder
        assert first.poll() is None and time.monotonic() < deadline
        time.sleep(0.2)
    second = subprocess.run(_cli("train", *RUN, "--resume", "--data-dir", data_dir,
                                 "--out", str(run)),
                            capture_output=True, text=True, env=_env(), timeout=300)
    lines = second.stderr.strip().splitlines()
    assert second.returncode != 0 and len(lines) == 1, second.stderr
    assert f"another run (PID {first.pid}) is training into {run}" in lines[0]
    first.send_signal(signal.SIGTERM)  # a scheduler's stop: the first saves and ends
    _, stderr = first.communicate(timeout=120)
    assert first.returncode == 143, stderr  # 128 + SIGTERM
    assert len(stderr.strip().splitlines()) == 1 and "interrupted" in stderr
    assert load_checkpoint(run / "last.pt")["step"] >= 1
    assert _no_temporary_files(run)


def test_the_lock_says_who_holds_it_and_clears_what_a_kill_left(tmp_path):
    (tmp_path / ".last.pt.k3j2h1.tmp").write_bytes(b"half a checkp")  # a save cut by kill -9
    (tmp_path / "notes.tmp").write_text("mine")
    with RunLock(tmp_path):
        assert (tmp_path / ".lock").read_text() == f"{os.getpid()}\n"
        assert sorted(p.name for p in tmp_path.iterdir()) == [".lock", "notes.tmp"]
    with RunLock(tmp_path):  # released at the end of the block
        pass


def test_training_into_a_run_needs_resume_or_overwrite(tmp_path, capsys):
    run = tmp_path / "run"
    common = [*RUN, "--data-dir", str(tmp_path / "data"), "--out", str(run)]
    main(["train", *common])
    before = (run / "last.pt").read_bytes()
    _one_line_exit(["train", *common], r"already holds a run .*--resume.*--overwrite")
    assert (run / "last.pt").read_bytes() == before  # step 2 did not become a new step 1
    main(["train", *common, "--overwrite", "--seed", "1"])
    assert (run / "last.pt.bak").read_bytes() == before  # the old run is kept
    assert "kept as last.pt.bak" in capsys.readouterr().err
    assert load_checkpoint(run / "last.pt")["config"]["seed"] == 1


def test_resume_without_a_checkpoint_is_an_error(tmp_path):
    _one_line_exit(["train", *RUN, "--resume", "--data-dir", str(tmp_path / "data"), "--out",
                    str(tmp_path / "typo")], r"--resume, but .*typo holds no checkpoint")
    assert not (tmp_path / "typo").exists() and not (tmp_path / "data").exists()  # no work


# -- outputs never replace inputs ------------------------------------------------------------

def test_export_and_convert_refuse_to_write_over_their_input(tmp_path):
    checkpoint = tmp_path / "last.pt"
    checkpoint.write_bytes(b"a checkpoint")
    _one_line_exit(["export", str(checkpoint), "--format", "pt2", "--out", str(checkpoint)],
                   "is the input")
    _one_line_exit(["export", str(checkpoint), "--format", "pt2", "--out",
                    str(tmp_path / "model.onnx")], r"must end in \.pt2")
    _one_line_exit(["convert", str(checkpoint), "--out", str(checkpoint)], "is the input")
    _one_line_exit(["convert", str(checkpoint), "--out", str(tmp_path / "x.onnx")],
                   r"must end in \.pt or \.pth")
    assert checkpoint.read_bytes() == b"a checkpoint"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]  # nothing written


# -- values checked before work --------------------------------------------------------------

@pytest.mark.parametrize("setting, message", [
    ("momentum=nan", "momentum must be a finite number"),
    ("poly_power=nan", "poly_power must be a finite number"),
    ("poly_power=-3", "poly_power must be >= 0"),
    ("lr=inf", "lr must be a finite number"),
    ("time_budget_s=inf", "time_budget_s must be a finite number"),
    ("seed=-1", r"seed must be an integer in \[0, 2\*\*63\)"),
    ("seed=100000000000000000000000", r"seed must be an integer in \[0, 2\*\*63\)"),
    ("momentum=1.5", r"momentum must be in \[0, 1\)"),
    ("save_every_minutes=nan", "save_every_minutes must be a finite number"),
    ("threads=0", r"threads must be >= 1 \(or unset\)"),
])
def test_settings_out_of_range_are_one_line_before_any_work(tmp_path, setting, message):
    _one_line_exit(["train", "--set", setting, "--data-dir", str(tmp_path / "data"), "--out",
                    str(tmp_path / "run")], message)
    assert not (tmp_path / "run").exists() and not (tmp_path / "data").exists()


def test_a_budget_scale_of_nan_is_refused(monkeypatch):
    monkeypatch.setenv("RNLIB_BUDGET_SCALE", "nan")
    with pytest.raises(ValueError, match="finite number > 0"):
        budget_scale()


@pytest.mark.parametrize("argv, message", [
    (["train", "--set", "crop=100000"], r"batch of 8 crops of 100000x100000 needs at least"),
    (["train", "--set", "data_options={'size': 20000, 'count': 16}"],
     r"shapes images of 20000x20000 .*needs at least"),
    (["data", "shapes", "--size", "20000"], r"generating 2000 shapes images of 20000x20000"),
])
def test_sizes_that_cannot_fit_in_memory_are_refused_at_once(tmp_path, argv, message):
    started = time.monotonic()
    _one_line_exit([*argv, "--data-dir", str(tmp_path / "data"),
                    *(["--out", str(tmp_path / "run")] if argv[0] == "train" else [])],
                   message + r".*GiB is available")
    assert time.monotonic() - started < 10 and not (tmp_path / "run").exists()


def test_weights_that_turn_nan_are_never_saved_and_the_run_resumes(data, tmp_path):  # noqa: F811
    trainer = _trainer(data, tmp_path, _config(save_every_steps=1))
    def poison(optimizer, args, kwargs):  # as a NaN momentum does: the loss stays finite
        if trainer.step == 2:
            next(trainer.model.parameters()).data.fill_(float("nan"))

    trainer.optimizer.register_step_post_hook(poison)
    with pytest.raises(NonFiniteLossError, match=r"weights became NaN .* in step 3.*still "
                                                 r"holds step 2.*--resume"):
        trainer.fit()
    state = load_checkpoint(tmp_path / "last.pt")
    assert state["step"] == 2
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
    with pytest.raises(NonFiniteLossError, match="not saved"):
        trainer.save()  # a non-finite checkpoint is never written
    assert load_checkpoint(tmp_path / "last.pt")["step"] == 2
    resumed = _trainer(data, tmp_path, _config(save_every_steps=1))
    resumed.fit(resume=True)  # the settings are finite, so they compare equal
    assert resumed.step == 8


def _checkpoint(path: Path, model_options=None, poison=False, **config) -> Path:
    """A checkpoint as rnlib train writes it, of a model built here (no training)."""
    config = TrainConfig(**{"model": "refinenet", "backbone": "resnet18", "num_classes": 5,
                            "model_options": model_options or {"widths": (64, 64)},
                            "data_options": {"count": 16, "size": 32}, **config})
    model = build_model(config.model, num_classes=5, backbone="resnet18",
                        **config.model_options)
    weights = model.state_dict()
    if poison:
        next(iter(weights.values())).fill_(float("nan"))
    save_checkpoint({"model": weights, "config": plain(asdict(config))}, path)
    return path


def test_eval_refuses_what_it_cannot_score_in_one_line(tmp_path):
    data_dir = ["--data-dir", str(tmp_path / "data")]
    nan = _checkpoint(tmp_path / "nan.pt", poison=True)
    _one_line_exit(["eval", str(nan), *data_dir], r"NaN or infinite values among its \d+ "
                                                   r"weights.*lower learning rate")
    plain_state = tmp_path / "plain.pt"
    torch.save(build_model("fcn32s", num_classes=5, backbone="resnet18").state_dict(),
               plain_state)
    _one_line_exit(["eval", str(plain_state), *data_dir], "is a plain state dict")
    wide = _checkpoint(tmp_path / "wide.pt")
    _one_line_exit(["eval", str(wide), "--model-option", "widths=32,32", *data_dir],
                   r"do not fit refinenet.* of other shapes; first: .* \(64, .*drop "
                   r"--model-option")
    other = tmp_path / "other.pt"
    state = load_checkpoint(wide)
    state["config"]["model"], state["config"]["model_options"] = "fcn32s", {}
    save_checkpoint(state, other)
    _one_line_exit(["eval", str(other), *data_dir], r"do not fit fcn32s .*unexpected")


# -- the disk ----------------------------------------------------------------------------------

class _FailingFile(io.FileIO):
    """A temporary file whose writes fail past ``room`` bytes with ``code``, as a full
    (ENOSPC) or read-only (EROFS) disk makes them fail."""

    def __init__(self, path, code, room):
        super().__init__(path, "wb")
        self.name, self.code, self.room = path, code, room

    def write(self, chunk):
        if self.tell() + len(chunk) > self.room:
            raise OSError(self.code, os.strerror(self.code))
        return super().write(chunk)


def _failing_disk(monkeypatch, code, after_checkpoints=0):
    """From the ``after_checkpoints + 1``-th checkpoint on, saving it fails with ``code``."""
    made = tempfile.NamedTemporaryFile
    count = []

    def temporary(*args, **kwargs):
        if kwargs.get("prefix", "").startswith(".last.pt"):
            count.append(1)
            if len(count) > after_checkpoints:
                fd, path = tempfile.mkstemp(dir=kwargs["dir"], prefix=kwargs["prefix"])
                os.close(fd)
                return _FailingFile(path, code, room=4096)
        return made(*args, **kwargs)

    monkeypatch.setattr(atomic.tempfile, "NamedTemporaryFile", temporary)


@pytest.mark.parametrize("code, why", [(errno.ENOSPC, "the disk is full"),
                                       (errno.EROFS, "the disk is read-only")])
def test_a_full_or_read_only_disk_is_one_line_that_keeps_the_last_checkpoint(tmp_path,
                                                                            monkeypatch, code,
                                                                            why):
    run = tmp_path / "run"
    _failing_disk(monkeypatch, code, after_checkpoints=1)
    message = _one_line_exit(["train", *RUN, "--steps", "3", "--save-every-steps", "1",
                              "--data-dir", str(tmp_path / "data"), "--out", str(run)],
                             f"cannot save a checkpoint in {run}: {why}")
    assert f"{run / 'last.pt'} still holds step 1" in message
    assert f"rnlib train --resume --out {run}" in message
    assert load_checkpoint(run / "last.pt")["step"] == 1
    assert json.loads((run / "history.json").read_text())["step_loss"]
    assert _no_temporary_files(run)  # no 93 MB .tmp left on the full disk


def test_torch_turning_a_full_disk_into_unexpected_pos_is_seen_through(tmp_path, monkeypatch):
    _failing_disk(monkeypatch, errno.ENOSPC)
    with pytest.raises(OSError) as failed:
        save_checkpoint({"w": torch.zeros(10000)}, tmp_path / "last.pt")
    assert failed.value.errno == errno.ENOSPC  # not torch's "unexpected pos 64 vs 0"
    assert not list(tmp_path.iterdir())


def test_free_space_is_checked_before_the_first_step(tmp_path, monkeypatch):
    usage = shutil.disk_usage
    monkeypatch.setattr("rnlib.rundir.shutil.disk_usage",
                        lambda path: usage(path)._replace(free=3 * 2**20))
    _one_line_exit(["train", *RUN, "--data-dir", str(tmp_path / "data"), "--out",
                    str(tmp_path / "run")],
                   r"has 3.0 MB free, but a checkpoint of this run takes about \d+\.\d MB")
    assert not (tmp_path / "run" / "last.pt").exists()


def test_saves_are_atomic_and_synced(tmp_path, monkeypatch):
    synced = []
    sync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), sync(fd)))
    target = tmp_path / "history.json"
    atomic.write_text_atomic(target, "old")
    assert len(synced) == 2  # the file, then its folder
    umask = os.umask(0o022)
    try:
        atomic.write_text_atomic(tmp_path / "other.json", "{}")
    finally:
        os.umask(umask)
    assert (tmp_path / "other.json").stat().st_mode & 0o777 == 0o644  # not a temp file's 0600
    (tmp_path / "other.json").unlink()

    def dies_half_way(file):
        file.write(b'{"step_lo')
        raise KeyboardInterrupt  # a kill in the middle of writing history.json

    with pytest.raises(KeyboardInterrupt):
        atomic.write_atomic(target, dies_half_way)
    assert target.read_text() == "old" and sorted(tmp_path.iterdir()) == [target]


# -- data --------------------------------------------------------------------------------------

def test_two_processes_make_one_dataset_at_once(tmp_path):
    make = ("import sys; from rnlib.data.sources import shapes; "
            "print(len(shapes('train', count=96, size=32, root=sys.argv[1])))")
    both = [subprocess.Popen([sys.executable, "-c", make, str(tmp_path)], env=_env(),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)]
    for process in both:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0 and out.strip() == "96", err
    assert [p.name for p in (tmp_path / "shapes").iterdir()] == ["train-96-32px-seed0"]


def test_losing_the_race_to_write_a_dataset_uses_the_winners_copy(tmp_path, monkeypatch):
    make = data_sources.make_samples

    def slow_then_beaten(*args, **kwargs):  # another process finishes first, meanwhile
        monkeypatch.setattr(data_sources, "make_samples", make)
        shapes("train", count=8, size=32, root=tmp_path)
        return make(*args, **kwargs)

    monkeypatch.setattr(data_sources, "make_samples", slow_then_beaten)
    assert len(shapes("train", count=8, size=32, root=tmp_path)) == 8
    assert _no_temporary_files(tmp_path)


def test_a_dataset_that_cannot_be_written_does_not_blame_the_root(tmp_path, monkeypatch):
    def full(self, path, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("datasets.Dataset.save_to_disk", full)
    with pytest.raises(OSError, match="No space left.*free space") as failed:
        shapes("train", count=8, size=32, root=tmp_path)
    assert "root=" not in str(failed.value) and _no_temporary_files(tmp_path)


def test_resume_on_other_data_is_refused(tmp_path):
    mine = tmp_path / "mine"
    _pictures(mine, [f"a{i:02d}" for i in range(40)], 3)
    common = ["train", "--dataset", str(mine), "--num-classes", "3", "--steps", "1",
              "--batch-size", "2", "--set", "crop=32", "--model", "fcn32s", "--out",
              str(tmp_path / "run")]
    main(common)
    for image in (mine / "images").iterdir():
        image.unlink()
    _pictures(mine, [f"b{i:02d}" for i in range(60)], 3)  # 60 other samples
    _one_line_exit([*common, "--resume"], "the training data changed since .*last.pt")


def test_out_of_range_labels_get_advice_that_fits_the_dataset(tmp_path):
    named, unnamed = tmp_path / "named", tmp_path / "unnamed"
    for root in (named, unnamed):
        _pictures(root, [f"i{i}" for i in range(10)], 4)  # labels 0..3
    (named / "classes.txt").write_text("sky\nroad\ncar\n")  # names only 3
    with pytest.raises(DataError, match="classes.txt") as failed:
        from rnlib.data import check_labels

        check_labels(folder(named), 3)
    assert "--num-classes" not in str(failed.value)
    with pytest.raises(DataError, match="--num-classes"):
        check_labels(folder(unnamed), 3)


def test_a_9000_pixel_square_image_is_refused_by_name(tmp_path):
    _pictures(tmp_path, ["small"], 2)
    Image.fromarray(np.zeros((9000, 9000), np.uint8)).save(tmp_path / "images" / "huge.png")
    Image.fromarray(np.zeros((9000, 9000), np.uint8)).save(tmp_path / "masks" / "huge.png")
    source = FileSource([tmp_path / "images" / "huge.png"], [tmp_path / "masks" / "huge.png"],
                        "huge")
    started = time.monotonic()
    with pytest.raises(DataError, match=r"huge.png is 9000x9000 \(81.0 M pixels\).*downsize"):
        source[0]
    assert time.monotonic() - started < 2  # refused from the header, not decoded


# -- signals -----------------------------------------------------------------------------------

def test_a_fifo_never_blocks_a_run(tmp_path):
    _pictures(tmp_path, [f"img{i}" for i in range(5)], 2)
    os.mkfifo(tmp_path / "images" / "pipe.png")
    assert len(folder(tmp_path, "all")) == 5  # the FIFO is skipped
    fifo = FileSource([tmp_path / "images" / "pipe.png"], [tmp_path / "masks" / "img1.png"],
                      "fifo")
    with pytest.raises(DataError, match="not a regular file"):
        fifo[0]


class _Signalling(torch.utils.data.Dataset):
    """A dataset that sends this process ``times`` SIGTERMs when item ``at`` is read (once),
    then takes its time, as a slow disk does."""

    def __init__(self, dataset, at, times=1):
        self.dataset, self.at, self.times, self.read = dataset, at, times, []

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, i):
        self.read.append(i)
        if i == self.at and self.times:
            for _ in range(self.times):
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(0.05)
            self.times = 0
            time.sleep(1.0)
        return self.dataset[i]


def test_sigterm_during_evaluation_stops_at_the_next_batch(data, tmp_path):  # noqa: F811
    train_set, val_set = data
    trainer = _trainer(data, tmp_path)  # 2 epochs of 4 steps, evaluated after each
    trainer.val_set = _Signalling(val_set, at=1)
    with pytest.raises(TrainingInterrupted) as stop:
        trainer.fit()
    assert stop.value.signum == signal.SIGTERM
    assert max(trainer.val_set.read) < trainer.batch  # the batch in hand, not the next
    assert load_checkpoint(tmp_path / "last.pt")["step"] == trainer.step == 4  # no step more


def test_a_second_signal_saves_the_last_whole_step(data, tmp_path):  # noqa: F811
    train_set, _ = data
    trainer = _trainer(data, tmp_path, train_set=_Signalling(train_set, at=9, times=2))
    with pytest.raises(TrainingInterrupted, match="interrupted at step") as stop:
        trainer.fit()
    assert stop.value.signum == signal.SIGTERM
    assert trainer.train_set.dataset.read[-1] == 9  # stopped while reading, not a step later
    assert load_checkpoint(tmp_path / "last.pt")["step"] == trainer.step


@pytest.mark.parametrize("number", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_during_data_generation_is_one_line_and_status_128_plus_it(tmp_path, number):
    started = ("import rnlib.data.sources as s, sys\n"
               "make = s.make_samples\n"
               "def announced(*a, **k):\n"
               "    print('generating', flush=True)\n"
               "    return make(*a, **k)\n"
               "s.make_samples = announced\n"
               "from rnlib.cli import main\n"
               "main(sys.argv[1:])\n")
    process = subprocess.Popen([sys.executable, "-c", started, "data", "shapes", "--count",
                                "100000", "--size", "32", "--data-dir", str(tmp_path)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=_env())
    assert process.stdout.readline().strip() == "generating"
    time.sleep(0.5)
    process.send_signal(number)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 128 + number
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rnlib data: interrupted"), stderr
    assert _no_temporary_files(tmp_path)


# -- convert -----------------------------------------------------------------------------------

class _Code:
    def __reduce__(self):
        return (os.system, ("echo this ran",))


def test_convert_names_a_pickle_that_carries_code_and_keeps_torchs_warning(tmp_path):
    path = tmp_path / "rf_lw50_voc.pth"
    torch.save({"state_dict": {}, "payload": _Code()}, path)
    message = _one_line_exit(["convert", str(path), "--out", str(tmp_path / "lw50.pt")],
                             r"carries code: .*\(posix.system\)")
    assert "arbitrary code execution" in message and "download it again" not in message
