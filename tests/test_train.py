"""The Trainer: checkpoints, exact resume, interruption, the NaN guard, budgets and options."""

import json
import types
from dataclasses import replace

import pytest
import torch
from torch.utils.data import Dataset

from rnlib import build_model
from rnlib.data import SegmentationDataset, eval_transform, train_transform
from rnlib.data.sources import shapes
from rnlib.train import NonFiniteLossError, TrainConfig, Trainer, load_checkpoint, resumable


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
    model = build_model(config.model, num_classes=5, backbone=config.backbone)
    return Trainer(model, train_set or data[0], data[1], config, out, progress=False)


def test_fit_writes_history_and_a_safe_checkpoint(data, tmp_path):
    trainer = _trainer(data, tmp_path)
    history = trainer.fit()
    assert history["epoch"] == [1, 2] and history["step"] == [4, 8]
    assert 0 <= history["val_miou"][-1] <= 1
    state = load_checkpoint(tmp_path / "last.pt")  # weights_only=True inside
    assert state["step"] == 8 and state["config"]["model"] == "fcn8s"
    assert json.loads((tmp_path / "history.json").read_text())["step"] == [4, 8]


class FaultAfter(Dataset):
    """Reads ``inner``; from read number ``reads`` on, returns ``fault(image, mask)`` instead."""

    def __init__(self, inner, reads, fault):
        self.inner, self.left, self.fault = inner, reads, fault

    def __len__(self):
        return len(self.inner)

    def __getitem__(self, i):
        image, mask = self.inner[i]
        self.left -= 1
        return self.fault(image, mask) if self.left < 0 else (image, mask)


def _ctrl_c(image, mask):
    raise KeyboardInterrupt  # what Ctrl-C raises in the training loop


def _nan(image, mask):
    return image * float("nan"), mask


def test_interrupted_run_resumes_to_the_same_weights(data, tmp_path):
    full = _trainer(data, tmp_path / "full")
    full.fit()
    # Ctrl-C in the middle of epoch 2 (16 samples an epoch, 4 a batch)
    broken = _trainer(data, tmp_path / "cut", train_set=FaultAfter(data[0], 16 + 6, _ctrl_c))
    with pytest.raises(KeyboardInterrupt):
        broken.fit()
    assert load_checkpoint(tmp_path / "cut" / "last.pt")["epoch"] == 1  # whole, epoch 1
    resumed = _trainer(data, tmp_path / "cut")
    resumed.fit(resume=True)
    assert resumed.step == full.step == 8
    for (name, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name
    assert resumed.history["train_loss"] == full.history["train_loss"]


def test_resume_with_other_settings_is_refused(data, tmp_path):
    _trainer(data, tmp_path).fit()
    other = _trainer(data, tmp_path, _config(lr=5e-3))
    with pytest.raises(ValueError, match="other settings"):
        other.fit(resume=True)


def test_nan_loss_stops_with_a_clear_message_and_keeps_the_checkpoint(data, tmp_path):
    trainer = _trainer(data, tmp_path, train_set=FaultAfter(data[0], 16 + 4, _nan))
    with pytest.raises(NonFiniteLossError, match=r"loss became nan at epoch 2.*last good checkpoint.*Lower the learning rate"):
        trainer.fit()
    state = load_checkpoint(tmp_path / "last.pt")
    assert state["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


def test_interrupted_save_leaves_the_previous_checkpoint(data, tmp_path, monkeypatch):
    trainer = _trainer(data, tmp_path, _config(epochs=1))
    trainer.fit()
    before = (tmp_path / "last.pt").read_bytes()

    def broken_save(obj, path):
        with open(path, "wb") as f:
            f.write(b"half a checkp")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(KeyboardInterrupt):
        trainer.save()
    assert (tmp_path / "last.pt").read_bytes() == before


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


def test_time_budget_plans_steps_without_touching_the_weights(data, tmp_path):
    torch.manual_seed(0)
    model = build_model("fcn32s", num_classes=5, backbone="resnet18")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainer = Trainer(model, data[0], data[1], _config(time_budget_s=1.0), tmp_path, progress=False)
    assert trainer.total_steps >= 1
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_budget_scale_env(data, tmp_path, monkeypatch):
    monkeypatch.setenv("RNLIB_BUDGET_SCALE", "nope")
    with pytest.raises(ValueError, match="RNLIB_BUDGET_SCALE must be a number"):
        _trainer(data, tmp_path, _config(time_budget_s=1.0))


def test_frozen_batch_norm_keeps_its_statistics(data, tmp_path):
    trainer = _trainer(data, tmp_path, _config(freeze_bn=True, epochs=1))
    bn = trainer.model.backbone.stem[1]
    mean = bn.running_mean.clone()
    trainer.fit()
    assert torch.equal(bn.running_mean, mean) and bn.weight.grad is None


def test_backbone_gets_its_own_learning_rate(data, tmp_path):
    trainer = _trainer(data, tmp_path, _config(backbone_lr_mult=0.1, optimizer="sgd", lr=0.01))
    lrs = sorted(g["lr"] for g in trainer.optimizer.param_groups)
    assert lrs == pytest.approx([0.001, 0.01])


def test_unknown_options_are_named():
    with pytest.raises(ValueError, match="unknown training options .*'lr_rate'"):
        TrainConfig.from_dict({"lr_rate": 1})


def test_history_keeps_the_per_class_iou(data, tmp_path):
    history = _trainer(data, tmp_path, _config(epochs=1)).fit()
    assert len(history["val_iou"][-1]) == 5
    assert sum(history["val_iou"][-1]) / 5 == pytest.approx(history["val_miou"][-1], nan_ok=True)


def test_resumable_only_with_the_same_settings_and_budget_scale(data, tmp_path, monkeypatch):
    config = _config(epochs=1)
    assert not resumable(tmp_path, config)  # nothing there yet
    trainer = _trainer(data, tmp_path, config)
    trainer.fit()
    assert resumable(tmp_path, config)
    assert resumable(tmp_path, replace(config, device="cpu"))  # the device is not a setting
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
    for (name, a), b in zip(first.model.state_dict().items(), again.model.state_dict().values()):
        assert torch.equal(a, b), name


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


def test_seconds_per_step_keeps_the_trainers_optimizer(data, tmp_path):
    trainer = _trainer(data, tmp_path)
    optimizer = torch.optim.SGD(trainer.model.parameters(), lr=0.1, momentum=0.9)
    trainer.optimizer = optimizer
    assert trainer.seconds_per_step(steps=1) > 0
    assert trainer.optimizer is optimizer and not optimizer.state  # momentum buffers undone


def test_time_budget_is_kept_when_steps_slow_down(data, tmp_path, monkeypatch):
    # a fake clock: each step costs 0.125 s, then 0.25 s from the 30th on (a shared machine's
    # pace drifts); the run re-plans from the pace it sees and ends on its 10 s budget
    monkeypatch.setenv("RNLIB_BUDGET_SCALE", "1")
    clock = types.SimpleNamespace(now=0.0, steps=0)
    monkeypatch.setattr("rnlib.train.time", types.SimpleNamespace(perf_counter=lambda: clock.now))
    real_step = Trainer._train_step

    def timed_step(self, images, masks):
        clock.now += 0.125 if clock.steps < 30 else 0.25
        clock.steps += 1
        return real_step(self, images, masks)

    monkeypatch.setattr(Trainer, "_train_step", timed_step)
    model = torch.nn.Conv2d(3, 5, 1)
    trainer = Trainer(model, data[0], None, _config(time_budget_s=10.0, eval_every=0), tmp_path,
                      progress=False)
    assert trainer.total_steps == 80  # calibrated at 0.125 s a step
    history = trainer.fit()
    assert 9.5 <= history["elapsed_s"][-1] <= 10.5  # the 80 steps first planned take 16.75 s
    assert trainer.step < 60
