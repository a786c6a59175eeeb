"""The Trainer: checkpoints at the current step on every kind of stop, exact resume from the
middle of an epoch, reproducible runs, the NaN guard, budgets, parameter groups, options."""

import json
import os
import signal
import types
from dataclasses import replace

import pytest
import torch
from torch.utils.data import Dataset

from rnlib import build_model
from rnlib.data import DataError, SegmentationDataset, eval_transform, train_transform
from rnlib.data.sources import shapes
from rnlib.train import (
    NonFiniteLossError,
    TrainConfig,
    Trainer,
    TrainingInterrupted,
    load_checkpoint,
    resumable,
)


@pytest.fixture(autouse=True)
def full_budget(monkeypatch):
    monkeypatch.setenv("RNLIB_BUDGET_SCALE", "1")  # these tests count steps exactly


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    train = SegmentationDataset(shapes("train", count=16, size=32, root=root), 5, train_transform(32))
    val = SegmentationDataset(shapes("val", count=8, size=32, root=root), 5, eval_transform())
    return train, val


def _config(**kw):
    base = dict(model="fcn8s", backbone="resnet18", num_classes=5, batch_size=4, epochs=2,
                lr=1e-3, seed=0, channels_last=False)
    return TrainConfig(**{**base, **kw})


def _trainer(data, out, config=None, train_set=None):
    config = config or _config()
    torch.manual_seed(config.seed)
    model = build_model(config.model, num_classes=5, backbone=config.backbone,
                        **config.model_options)
    return Trainer(model, train_set or data[0], data[1], config, out, progress=False)


def _same_weights(a, b):
    for (name, x), y in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.equal(x, y), name


def test_fit_writes_history_and_a_safe_checkpoint(data, tmp_path):
    trainer = _trainer(data, tmp_path)
    history = trainer.fit()
    assert history["epoch"] == [1, 2] and history["step"] == [4, 8]
    assert len(history["step_loss"]) == 8 and history["eval_step"] == [4, 8]
    assert 0 <= history["val_miou"][-1] <= 1
    state = load_checkpoint(tmp_path / "last.pt")  # weights_only=True inside
    assert state["step"] == 8 and state["config"]["model"] == "fcn8s"
    assert json.loads((tmp_path / "history.json").read_text())["step"] == [4, 8]


class FaultAt(Dataset):
    """Reads ``inner``; at read number ``read`` (0-based), calls ``fault(image, mask)``."""

    def __init__(self, inner, read, fault):
        self.inner, self.read, self.fault, self.reads = inner, read, fault, 0

    def __len__(self):
        return len(self.inner)

    def __getitem__(self, i):
        image, mask = self.inner[i]
        self.reads += 1
        return self.fault(image, mask) if self.reads - 1 == self.read else (image, mask)


def _signal(number):
    def send(image, mask):
        os.kill(os.getpid(), number)  # Ctrl-C, or what a scheduler sends
        return image, mask
    return send


def _nan(image, mask):
    return image * float("nan"), mask


def _corrupt(image, mask):
    raise DataError("cannot read image file /data/broken.jpg: truncated. The file is corrupt")


@pytest.mark.parametrize("number", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_mid_epoch_saves_the_step_and_resume_reaches_the_same_weights(data, tmp_path,
                                                                                 number):
    full = _trainer(data, tmp_path / "full", _config(model="refinenet",
                                                     model_options={"widths": (16, 16)}))
    full.fit()
    # the signal arrives while batch 2 of epoch 2 is read: that step finishes, then it stops
    cut = _trainer(data, tmp_path / "cut", _config(model="refinenet",
                                                   model_options={"widths": (16, 16)}),
                   train_set=FaultAt(data[0], 16 + 5, _signal(number)))
    with pytest.raises(TrainingInterrupted, match=r"interrupted at step 7.*holds step 6"):
        cut.fit()
    assert load_checkpoint(tmp_path / "cut" / "last.pt")["step"] == 6  # mid-epoch, whole
    assert signal.getsignal(number) is not None  # handlers put back
    resumed = _trainer(data, tmp_path / "cut", _config(model="refinenet",
                                                       model_options={"widths": (16, 16)}))
    resumed.fit(resume=True)
    assert resumed.step == full.step == 8
    _same_weights(full, resumed)  # dropout and augmentation are seeded by step and sample
    assert resumed.history["step_loss"] == full.history["step_loss"]
    assert resumed.history["train_loss"] == full.history["train_loss"]


def test_keyboard_interrupt_while_reading_saves_the_step(data, tmp_path):
    def ctrl_c(image, mask):
        raise KeyboardInterrupt  # as Ctrl-C does where no handler is installed

    trainer = _trainer(data, tmp_path, train_set=FaultAt(data[0], 9, ctrl_c))
    with pytest.raises(TrainingInterrupted, match="holds step 2"):
        trainer.fit()
    assert load_checkpoint(tmp_path / "last.pt")["step"] == 2


def test_two_runs_of_one_config_give_the_same_weights(data, tmp_path):
    config = _config(model="refinenet", model_options={"widths": (16, 16)}, epochs=1)
    a, b = _trainer(data, tmp_path / "a", config), _trainer(data, tmp_path / "b", config)
    a.fit()
    b.fit()
    _same_weights(a, b)
    other = _trainer(data, tmp_path / "c", replace(config, seed=1))
    other.fit()
    assert other.history["step_loss"] != a.history["step_loss"]


def test_nan_loss_saves_the_last_good_step_with_a_clear_message(data, tmp_path):
    trainer = _trainer(data, tmp_path, train_set=FaultAt(data[0], 16 + 4, _nan))
    with pytest.raises(NonFiniteLossError, match=r"loss became nan at step 6.*holds step 5.*lower learning rate"):
        trainer.fit()
    state = load_checkpoint(tmp_path / "last.pt")
    assert state["step"] == 5
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


def test_a_corrupt_sample_mid_run_keeps_a_checkpoint_and_names_the_file(data, tmp_path):
    trainer = _trainer(data, tmp_path, train_set=FaultAt(data[0], 13, _corrupt))
    with pytest.raises(DataError, match="broken.jpg"):
        trainer.fit()
    assert load_checkpoint(tmp_path / "last.pt")["step"] == 3


def test_checkpoints_every_n_steps(data, tmp_path, monkeypatch):
    saved = []
    monkeypatch.setattr("rnlib.rundir.save_checkpoint", lambda state, path: saved.append(state["step"]))
    _trainer(data, tmp_path, _config(save_every_steps=3)).fit()
    assert saved == [3, 4, 6, 8]  # every 3 steps and at each epoch's end


def test_resume_with_other_settings_is_refused(data, tmp_path):
    _trainer(data, tmp_path).fit()
    other = _trainer(data, tmp_path, _config(lr=5e-3))
    with pytest.raises(ValueError, match="other settings"):
        other.fit(resume=True)


def test_interrupted_save_leaves_the_previous_checkpoint(data, tmp_path, monkeypatch):
    trainer = _trainer(data, tmp_path, _config(epochs=1))
    trainer.fit()
    before = (tmp_path / "last.pt").read_bytes()

    def broken_save(obj, file):
        file.write(b"half a checkp")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(KeyboardInterrupt):
        trainer.save()
    assert (tmp_path / "last.pt").read_bytes() == before
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp"))  # cleaned


def test_damaged_checkpoint_is_named_with_the_fix(tmp_path):
    (tmp_path / "last.pt").write_bytes(b"half a checkp")
    with pytest.raises(ValueError, match=r"cannot read the checkpoint .*last.pt.*damaged.*train again"):
        load_checkpoint(tmp_path / "last.pt")
    with pytest.raises(ValueError, match="cannot read the checkpoint"):
        resumable(tmp_path, _config())


def test_unwritable_output_folder(data, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(OSError, match="cannot write checkpoints to .*choose another"):
        _trainer(data, blocker / "run").fit()


def test_batch_larger_than_the_dataset(data, tmp_path):
    with pytest.raises(ValueError, match="fewer than one batch of 64"):
        _trainer(data, tmp_path, _config(batch_size=64))


def test_budgets_in_steps_epochs_and_their_scale(data, tmp_path, monkeypatch):
    assert _trainer(data, tmp_path, _config(steps=5)).total_steps == 5
    assert _trainer(data, tmp_path, _config(epochs=3)).total_steps == 12
    monkeypatch.setenv("RNLIB_BUDGET_SCALE", "0.5")
    assert _trainer(data, tmp_path, _config(epochs=3)).total_steps == 6
    monkeypatch.setenv("RNLIB_BUDGET_SCALE", "nope")
    with pytest.raises(ValueError, match="RNLIB_BUDGET_SCALE must be a number"):
        _trainer(data, tmp_path, _config())


def test_a_budget_is_described_as_it_was_given(monkeypatch):
    from rnlib.budget import describe_budget

    monkeypatch.setenv("RNLIB_BUDGET_SCALE", "0.5")
    assert describe_budget(_config(steps=200)) == "200 steps x RNLIB_BUDGET_SCALE 0.5"
    assert describe_budget(_config(epochs=1)) == "1 epoch x RNLIB_BUDGET_SCALE 0.5"
    assert describe_budget(_config(epochs=3)) == "3 epochs x RNLIB_BUDGET_SCALE 0.5"
    assert describe_budget(_config(time_budget_s=60.0)) == \
        "60 s of training x RNLIB_BUDGET_SCALE 0.5"


def test_time_budget_probe_leaves_the_weights(data, tmp_path):
    trainer = _trainer(data, tmp_path, _config(time_budget_s=1.0))
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    optimizer = trainer.optimizer
    assert trainer.seconds_per_step(steps=1) > 0
    for k, v in trainer.model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert trainer.optimizer is optimizer and not optimizer.state  # momentum buffers undone


def test_frozen_batch_norm_keeps_its_statistics(data, tmp_path):
    trainer = _trainer(data, tmp_path, _config(freeze_bn=True, epochs=1))
    bn = trainer.model.backbone.stem[1]
    mean = bn.running_mean.clone()
    trainer.fit()
    assert torch.equal(bn.running_mean, mean) and bn.weight.grad is None


@pytest.mark.parametrize("model", ["fcn8s", "tv-fcn"])
def test_models_declare_their_backbone_for_its_learning_rate(data, tmp_path, model):
    config = _config(model=model, backbone="resnet50" if model == "tv-fcn" else "resnet18",
                     backbone_lr_mult=0.1, optimizer="sgd", lr=0.01)
    torch.manual_seed(0)
    net = build_model(model, num_classes=5, backbone=config.backbone)
    trainer = Trainer(net, data[0], data[1], config, tmp_path, progress=False)
    lrs = {g["name"]: g["lr"] for g in trainer.optimizer.param_groups}
    assert lrs == pytest.approx({"backbone": 0.001, "head": 0.01})
    backbone = {id(p) for p in net.parameter_groups()["backbone"]}
    assert backbone and backbone <= {id(p) for p in net.parameters()}


def test_a_model_without_groups_refuses_a_backbone_rate(data, tmp_path):
    with pytest.raises(ValueError, match="parameter_groups.*backbone_lr_mult"):
        Trainer(torch.nn.Conv2d(3, 5, 1), data[0], None, _config(backbone_lr_mult=0.1),
                tmp_path, progress=False)


def test_the_schedule_is_the_callers_function(data, tmp_path):
    calls = []

    def constant(step, total, base_lr, power=0.9):
        calls.append((step, total))
        return base_lr

    trainer = Trainer(build_model("fcn32s", num_classes=5, backbone="resnet18"), data[0], None,
                      _config(epochs=1), tmp_path, progress=False, schedule=constant)
    trainer.fit()
    assert (4, 4) in calls and trainer.optimizer.param_groups[0]["lr"] == pytest.approx(1e-3)


def test_unknown_options_are_named():
    with pytest.raises(ValueError, match="unknown training options .*'lr_rate'"):
        TrainConfig.from_dict({"lr_rate": 1})


def test_history_keeps_the_per_class_iou(data, tmp_path):
    history = _trainer(data, tmp_path, _config(epochs=1)).fit()
    assert len(history["val_iou"][-1]) == 5
    assert sum(history["val_iou"][-1]) / 5 == pytest.approx(history["val_miou"][-1], nan_ok=True)


def test_learning_curves_every_n_steps(data, tmp_path):
    history = _trainer(data, tmp_path, _config(eval_every=0, eval_every_steps=3)).fit()
    assert history["eval_step"] == [3, 6, 8] and len(history["val_miou"]) == 3
    assert history["eval_elapsed_s"] == sorted(history["eval_elapsed_s"])


def test_resumable_only_with_the_same_settings_and_budget_scale(data, tmp_path, monkeypatch):
    config = _config(epochs=1)
    assert not resumable(tmp_path, config)  # nothing there yet
    trainer = _trainer(data, tmp_path, config)
    trainer.fit()
    assert resumable(tmp_path, config)
    assert resumable(tmp_path, replace(config, device="cpu", eval_every_steps=5))  # how, not what
    assert not resumable(tmp_path, replace(config, lr=5e-3))
    monkeypatch.setenv("RNLIB_BUDGET_SCALE", "0.5")  # a shorter run is another result
    assert not resumable(tmp_path, config)
    with pytest.raises(ValueError, match="other settings .*RNLIB_BUDGET_SCALE"):
        _trainer(data, tmp_path, config).fit(resume=True)


def test_resuming_a_finished_run_changes_nothing(data, tmp_path):
    first = _trainer(data, tmp_path, _config(epochs=1))
    first.fit()
    again = _trainer(data, tmp_path, _config(epochs=1))
    again.fit(resume=True)
    assert again.step == first.step and again.history == first.history
    _same_weights(first, again)


def test_compiled_training_matches_eager_and_saves_plain_weights(data, tmp_path, monkeypatch):
    # torch.compile's graph capture without inductor's C++ code generation (a minute on 2 cores):
    # what is tested is that the Trainer trains through the compiled module and saves the plain one
    compiled, real_compile = [], torch.compile

    def compile_eager(model, **kw):
        compiled.append(model)
        return real_compile(model, backend="eager")

    monkeypatch.setattr(torch, "compile", compile_eager)
    eager = _trainer(data, tmp_path / "eager", _config(epochs=1)).fit()
    trainer = _trainer(data, tmp_path / "compiled", _config(epochs=1, compile=True))
    history = trainer.fit()
    assert compiled == [trainer.model] and trainer.forward is not trainer.model
    assert history["train_loss"] == pytest.approx(eager["train_loss"], rel=1e-4)
    state = load_checkpoint(tmp_path / "compiled" / "last.pt")["model"]
    assert state.keys() == trainer.model.state_dict().keys()  # no "_orig_mod." prefixes


def test_time_budget_is_kept_when_steps_slow_down(data, tmp_path, monkeypatch):
    # a fake clock: each step costs 0.125 s, then 0.25 s from the 30th on (a shared machine's
    # pace drifts); the run re-plans from the pace it sees and ends on its 10 s budget
    clock = types.SimpleNamespace(now=0.0, steps=0)
    monkeypatch.setattr("rnlib.train.time", types.SimpleNamespace(
        perf_counter=lambda: clock.now, monotonic=lambda: clock.now))
    real_step = Trainer._train_step

    def timed_step(self, images, masks, stop_requested=False):
        clock.now += 0.125 if clock.steps < 30 else 0.25
        clock.steps += 1
        return real_step(self, images, masks, stop_requested)

    monkeypatch.setattr(Trainer, "_train_step", timed_step)
    model = torch.nn.Conv2d(3, 5, 1)
    trainer = Trainer(model, data[0], None, _config(time_budget_s=10.0, eval_every=0), tmp_path,
                      progress=False)
    history = trainer.fit()
    assert clock.steps - trainer.step == 4  # the probe: a warm-up and 3 timed steps
    assert 9.5 <= history["elapsed_s"][-1] <= 10.5  # the 80 steps first planned take 16.75 s
    assert trainer.step < 60


def test_warm_up_rises_linearly_then_follows_the_schedule(data, tmp_path):
    trainer = _trainer(data, tmp_path, _config(warmup_steps=4, epochs=2, optimizer="sgd",
                                               lr=0.1))
    lrs = []
    for _ in range(8):
        lrs.append(trainer.optimizer.param_groups[0]["lr"])
        trainer.optimizer.step()  # no gradients: changes nothing, keeps the scheduler's order
        trainer.scheduler.step()
    poly = [0.1 * (1 - k / 8) ** 0.9 for k in range(8)]
    assert lrs == pytest.approx([p * min(1, (k + 1) / 4) for k, p in enumerate(poly)])


def test_every_config_field_says_whether_it_affects_results():
    from dataclasses import fields

    from rnlib.checkpoint import run_settings
    from rnlib.config import AFFECTS_RESULTS, TrainConfig

    assert all(AFFECTS_RESULTS in f.metadata for f in fields(TrainConfig))
    base = TrainConfig(num_classes=5)
    how = dict(device="cpu", compile=True, num_workers=2, eval_every=3, eval_every_steps=7,
               save_every_steps=5, save_every_minutes=1.5)
    assert run_settings(replace(base, **how)) == run_settings(base)
    assert run_settings(base)["eval_every"] == 0  # as the checkpoints written so far hold it
    for name, value in dict(lr=0.5, seed=1, crop=96, channels_last=False).items():
        assert run_settings(replace(base, **{name: value})) != run_settings(base), name


@pytest.mark.parametrize("bad, finite", [(None, True), (float("nan"), False),
                                         (float("inf"), False), (-float("inf"), False),
                                         (3e38, True)])
def test_the_finite_weights_check_is_exact_even_where_a_sum_overflows(bad, finite):
    """The guard sums each tensor first; a sum that overflows (3e38 twice) must not be taken
    for a NaN, and a single bad element anywhere, in a weight or a buffer, must be found."""
    from rnlib.train import _finite

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    if bad is not None:
        with torch.no_grad():
            model[0].weight[1, 2, 0, 0] = bad
            model[0].weight[3, 0, 2, 1] = bad
            model[1].running_var[3] = bad if bad != 3e38 else 1.0
    assert _finite(model) is finite
