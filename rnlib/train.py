"""Training: one Trainer for every model, and the presets that configure it.

The recipe follows RefineNet's (Lin et al., §4): cross-entropy with an ignore index, SGD with
momentum (or AdamW), a lower learning rate for the pretrained backbone, a poly schedule.
Engineering on top: CUDA when present, AMP (bf16, or fp16 with a gradient scaler),
channels_last, ``cudnn.benchmark`` and an optional ``torch.compile`` on the GPU, a time budget
turned into a number of steps and re-planned from the pace of the run, atomic checkpoints
every epoch that load with ``weights_only=True``, exact resume, and a guard that stops on a NaN
or infinite loss while the last good checkpoint stays on disk.

The trainer knows nothing of a model's insides except that a model may expose ``.backbone``
(whose parameters get ``backbone_lr_mult``) and that it maps images to logits.
"""

from __future__ import annotations

import copy
import json
import os
import pickle
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from .evaluate import EvalResult, evaluate

__all__ = ["TrainConfig", "PRESETS", "Trainer", "NonFiniteLossError", "budget_scale",
           "load_checkpoint", "resumable"]

BUDGET_ENV = "RNLIB_BUDGET_SCALE"


def budget_scale() -> float:
    """``RNLIB_BUDGET_SCALE`` (default 1): multiplies every training time budget. CI and quick
    checks set it below 1 to shorten training; results then are not the documented ones."""
    value = os.environ.get(BUDGET_ENV, "1")
    try:
        scale = float(value)
    except ValueError:
        raise ValueError(f"{BUDGET_ENV} must be a number such as 0.1, got {value!r}") from None
    if scale <= 0:
        raise ValueError(f"{BUDGET_ENV} must be > 0, got {scale}")
    return scale


@dataclass
class TrainConfig:
    """Every knob of a training run; saved in each checkpoint as plain data."""

    model: str = "refinenet"
    backbone: str = "resnet18"
    num_classes: int = 5
    model_options: dict = field(default_factory=dict)
    pretrained_backbone: bool = False
    dataset: str = "shapes"
    data_options: dict = field(default_factory=dict)
    val_split: str = "val"
    crop: int = 128
    scale: tuple[float, float] = (0.5, 2.0)  # random scale range of the training augmentation
    batch_size: int = 8
    epochs: int = 10
    time_budget_s: float | None = None  # if set, the run's length: calibrated into steps
    optimizer: str = "adamw"  # "adamw" or "sgd"
    lr: float = 1e-3
    backbone_lr_mult: float = 1.0
    weight_decay: float = 1e-4
    momentum: float = 0.9
    poly_power: float = 0.9
    freeze_bn: bool = False
    amp: str = "auto"  # "auto" (bf16/fp16 on CUDA, off on CPU), "off", "bf16", "fp16"
    channels_last: bool = True
    compile: bool = False  # torch.compile the training forward: faster GPU steps after a warm-up
    eval_every: int = 1  # epochs between evaluations; 0 = only at the end
    seed: int = 0
    num_workers: int = 0
    device: str = "auto"

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown training options {sorted(unknown)}; known: {sorted(known)}")
        return cls(**data)


PRESETS: dict[str, TrainConfig] = {
    # 50 s of training on 2 CPU cores, so that four models compare within 5 minutes: ResNet-18,
    # a 64-wide decoder (a 256-wide one runs 5.3x slower per step, DESIGN §9), 128x128 Shapes.
    "cpu-quick": TrainConfig(
        model="refinenet", backbone="resnet18", num_classes=5,
        model_options={"widths": (64, 64)}, dataset="shapes",
        data_options={"count": 2000, "size": 128}, crop=128, batch_size=8,
        time_budget_s=50, optimizer="adamw", lr=1e-3, weight_decay=1e-4, eval_every=0),
    # A few minutes on a GPU: ResNet-50, the paper's 256-wide inner paths, 256x256 Shapes, AMP.
    "gpu-quick": TrainConfig(
        model="refinenet", backbone="resnet50", num_classes=5,
        model_options={"widths": (256, 256)}, dataset="shapes",
        data_options={"count": 4000, "size": 256}, crop=256, batch_size=16,
        time_budget_s=300, optimizer="adamw", lr=1e-3, weight_decay=1e-4, num_workers=4),
    # The paper's setting on a GPU: ResNet-101 (ImageNet weights when online), 512/256 widths,
    # PASCAL VOC 2012 at 512x512 crops, SGD with a 10x lower backbone learning rate.
    "gpu": TrainConfig(
        model="refinenet", backbone="resnet101", num_classes=21, pretrained_backbone=True,
        dataset="voc", data_options={"download": True}, crop=512, batch_size=16, epochs=50,
        optimizer="sgd", lr=1e-2, backbone_lr_mult=0.1, weight_decay=1e-4, num_workers=8),
}


# A time-budgeted run measures its pace from step PACE_FROM on and re-plans its length at step
# PACE_TO and every REPLAN_EVERY steps after, so that it ends on its budget
PACE_FROM, PACE_TO, REPLAN_EVERY = 3, 13, 10


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


def load_checkpoint(path: str | Path) -> dict:
    """Read a checkpoint safely: tensors and plain data only, no code runs."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}; train first, or check the folder")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, KeyError, EOFError, ValueError, pickle.UnpicklingError) as err:
        raise ValueError(f"cannot read the checkpoint {path} ({type(err).__name__}: {err}): it is "
                         f"damaged, not a checkpoint, or holds more than tensors and plain data; "
                         f"train again into a new folder, or use another copy") from err


def _atomic_save(obj: dict, path: Path) -> None:
    """Write to a temporary file, then rename: an interrupted save never leaves a half file."""
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _plain(value):
    """Tuples to lists, recursively, so configs round-trip through checkpoints and JSON."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _settings(config: TrainConfig) -> dict:
    """What a run's result depends on: its config, less how it runs and reports (device,
    compiling, how often it evaluates: evaluation changes no weight), and the budget scale."""
    return {**_plain(asdict(replace(config, device="auto", compile=False, eval_every=0))),
            "budget_scale": budget_scale()}


def resumable(out_dir: str | Path, config: TrainConfig) -> bool:
    """Whether ``out_dir/last.pt`` was written by a run of ``config`` (at the current budget
    scale), so that ``fit(resume=True)`` continues it, or returns at once if it finished."""
    path = Path(out_dir) / "last.pt"
    return path.exists() and load_checkpoint(path).get("settings") == _settings(config)


class Trainer:
    """Trains ``model`` on ``train_set``, evaluates on ``val_set``, checkpoints into ``out_dir``.

    ``fit(resume=True)`` continues from ``out_dir/last.pt`` to the same weights an
    uninterrupted run reaches: each epoch's shuffling, augmentation and dropout are seeded
    from (seed, epoch), and the checkpoint holds the optimizer, schedule and scaler states.
    """

    def __init__(self, model: nn.Module, train_set: Dataset, val_set: Dataset | None,
                 config: TrainConfig, out_dir: str | Path, progress: bool = True) -> None:
        self.config, self.progress = config, progress
        self.out_dir = Path(out_dir)
        self.device = torch.device(
            ("cuda" if torch.cuda.is_available() else "cpu") if config.device == "auto"
            else config.device)
        self.memory_format = torch.channels_last if config.channels_last else torch.preserve_format
        self.model = model.to(self.device, memory_format=self.memory_format)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed crop sizes: cuDNN picks its fastest
        # training steps call the compiled module; self.model stays the plain one (its weights
        # are shared), so checkpoints and evaluation do not depend on the compiler
        self.forward = torch.compile(self.model) if config.compile else self.model
        self.train_set, self.val_set = train_set, val_set
        self.generator = torch.Generator()
        self.loader = DataLoader(train_set, config.batch_size, shuffle=True, drop_last=True,
                                 num_workers=config.num_workers, generator=self.generator,
                                 pin_memory=self.device.type == "cuda")
        if len(self.loader) == 0:
            raise ValueError(f"the training set has {len(train_set)} samples, fewer than one batch "
                             f"of {config.batch_size}; lower batch_size or add data")
        self.amp_dtype = self._amp_dtype()
        self.scaler = torch.amp.GradScaler(self.device.type,
                                           enabled=self.amp_dtype == torch.float16)
        self.optimizer = self._optimizer()
        self.total_steps = self._planned_steps()
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: max(0.0, 1 - step / self.total_steps) ** config.poly_power)
        self.epoch, self.step = 0, 0
        self.history: dict[str, list[float]] = {}

    # -- set-up ------------------------------------------------------------------------------
    def _amp_dtype(self) -> torch.dtype | None:
        amp = self.config.amp
        if amp not in ("auto", "off", "bf16", "fp16"):
            raise ValueError(f"amp must be auto, off, bf16 or fp16, got {amp!r}")
        if amp == "off" or (amp == "auto" and self.device.type != "cuda"):
            return None
        if amp == "auto":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.bfloat16 if amp == "bf16" else torch.float16

    def _optimizer(self) -> torch.optim.Optimizer:
        c = self.config
        backbone = getattr(self.model, "backbone", None)
        backbone_ids = {id(p) for p in backbone.parameters()} if backbone is not None else set()
        params = [p for p in self.model.parameters() if p.requires_grad]
        groups = [{"params": [p for p in params if id(p) not in backbone_ids], "lr": c.lr},
                  {"params": [p for p in params if id(p) in backbone_ids],
                   "lr": c.lr * c.backbone_lr_mult}]
        groups = [g for g in groups if g["params"]]
        if c.optimizer == "sgd":
            return torch.optim.SGD(groups, lr=c.lr, momentum=c.momentum,
                                   weight_decay=c.weight_decay)
        if c.optimizer == "adamw":
            # one fused kernel for all parameters: the fastest on CUDA; on the 2-core CPU within
            # the noise of for-each for the quick preset (benchmarks/cpu_recipe.md)
            return torch.optim.AdamW(groups, lr=c.lr, weight_decay=c.weight_decay, fused=True)
        raise ValueError(f"optimizer must be 'sgd' or 'adamw', got {c.optimizer!r}")

    def _planned_steps(self) -> int:
        """Steps of the whole run: epochs x batches, or what fits in the time budget."""
        if self.config.time_budget_s is None:
            return self.config.epochs * len(self.loader)
        seconds = self.seconds_per_step()
        return max(1, int(self.config.time_budget_s * budget_scale() / seconds))

    def _replan(self, seconds_per_step: float, elapsed: float) -> None:
        """Re-plan a time-budgeted run from the pace of its real steps and the time it has
        spent: the calibration before the run pays one-off costs (memory, kernel set-up) and
        misjudges the pace by up to 2x, and a shared machine's pace drifts."""
        budget = self.config.time_budget_s * budget_scale()
        self.total_steps = self.step + max(1, int((budget - elapsed) / seconds_per_step))

    def seconds_per_step(self, steps: int = 3) -> float:
        """Time ``steps`` training steps after a warm-up step (which also pays for compiling),
        then put the weights, optimizer and random state back as they were."""
        model_state = {k: v.clone() for k, v in self.model.state_dict().items()}
        optim_state = copy.deepcopy(self.optimizer.state_dict())
        scaler_state = self.scaler.state_dict()
        rng = torch.get_rng_state()
        images, masks = next(iter(DataLoader(self.train_set, self.config.batch_size)))
        self._train_step(images, masks)  # warm-up: first-call costs are not the rate
        start = time.perf_counter()
        for _ in range(steps):
            self._train_step(images, masks)
        elapsed = (time.perf_counter() - start) / steps
        self.model.load_state_dict(model_state)
        self.optimizer.load_state_dict(optim_state)
        self.scaler.load_state_dict(scaler_state)
        torch.set_rng_state(rng)
        return elapsed

    # -- training ----------------------------------------------------------------------------
    def _train_mode(self) -> None:
        self.model.train()
        if self.config.freeze_bn:
            for m in self.model.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
                    m.requires_grad_(False)

    def _train_step(self, images: torch.Tensor, masks: torch.Tensor) -> float:
        self._train_mode()
        images = images.to(self.device, non_blocking=True, memory_format=self.memory_format)
        masks = masks.to(self.device, non_blocking=True)
        with torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32,
                            enabled=self.amp_dtype is not None):
            logits = self.forward(images)  # (N, K, H, W)
        loss = F.cross_entropy(logits.float(), masks, ignore_index=255)
        if not torch.isfinite(loss):
            raise NonFiniteLossError(
                f"the loss became {loss.item()} at epoch {self.epoch + 1}, step {self.step + 1}; "
                f"training stopped and the last good checkpoint ({self.out_dir / 'last.pt'}) is "
                f"kept. Lower the learning rate (now {self.config.lr}), turn AMP off, or check "
                f"the data for NaNs; then resume")
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return loss.item()

    def fit(self, resume: bool = False) -> dict[str, list[float]]:
        """Train to the planned number of steps; returns the history."""
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            probe = self.out_dir / ".write-test"
            probe.write_text("")
            probe.unlink()
        except OSError as err:
            raise OSError(f"cannot write checkpoints to {self.out_dir}: {err.strerror}; "
                          f"choose another output folder") from err
        if resume and (self.out_dir / "last.pt").exists():
            self._restore(load_checkpoint(self.out_dir / "last.pt"))
        start = time.perf_counter() - (self.history["elapsed_s"][-1] if self.history else 0.0)
        pace_start = None
        bar = tqdm(total=self.total_steps, initial=self.step, desc="train",
                   disable=None if self.progress else True, leave=False)  # None: off without a tty
        try:
            while self.step < self.total_steps:
                self.generator.manual_seed(self.config.seed * 100_003 + self.epoch)
                torch.manual_seed(self.config.seed * 100_003 + self.epoch)
                losses = []
                for images, masks in self.loader:
                    losses.append(self._train_step(images, masks))
                    self.history.setdefault("step_loss", []).append(losses[-1])
                    self.scheduler.step()
                    self.step += 1
                    if self.step == PACE_FROM:
                        pace_start = time.perf_counter()
                    elif pace_start and self.config.time_budget_s and self.step >= PACE_TO \
                            and (self.step - PACE_TO) % REPLAN_EVERY == 0:
                        now = time.perf_counter()
                        self._replan((now - pace_start) / (self.step - PACE_FROM), now - start)
                        bar.total = self.total_steps
                    bar.update()
                    bar.set_postfix(loss=f"{losses[-1]:.3f}", epoch=self.epoch + 1)
                    if self.step >= self.total_steps:
                        break
                self.epoch += 1
                self._end_epoch(sum(losses) / len(losses), time.perf_counter() - start)
        except KeyboardInterrupt:
            bar.close()
            print(f"interrupted at step {self.step}; {self.out_dir / 'last.pt'} holds epoch "
                  f"{self.epoch} whole: continue with resume=True (rnlib train --resume)")
            raise
        bar.close()
        return self.history

    def _end_epoch(self, train_loss: float, elapsed: float) -> None:
        record = {"epoch": self.epoch, "step": self.step, "train_loss": train_loss,
                  "lr": self.optimizer.param_groups[0]["lr"], "elapsed_s": elapsed}
        last = self.step >= self.total_steps
        every = self.config.eval_every
        if self.val_set is not None and (last or (every and self.epoch % every == 0)):
            result = self.evaluate()
            record.update(val_miou=result.miou, val_pixel_accuracy=result.pixel_accuracy,
                          val_boundary_f=result.boundary_f, val_iou=result.iou)
        for key, value in record.items():
            self.history.setdefault(key, []).append(value)
        self.save()

    def evaluate(self) -> EvalResult:
        """Metrics of the current model on the validation set."""
        loader = DataLoader(self.val_set, batch_size=self.config.batch_size,
                            num_workers=self.config.num_workers)
        return evaluate(self.model, loader, self.config.num_classes, device=self.device,
                        channels_last=self.config.channels_last)

    # -- checkpoints -------------------------------------------------------------------------
    def save(self) -> None:
        _atomic_save({
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(),
            "epoch": self.epoch, "step": self.step, "total_steps": self.total_steps,
            "history": self.history, "config": _plain(asdict(self.config)),
            "settings": _settings(self.config),
        }, self.out_dir / "last.pt")
        (self.out_dir / "history.json").write_text(json.dumps(self.history, indent=1))

    def _restore(self, state: dict) -> None:
        if state.get("settings") != _settings(self.config):
            raise ValueError(f"{self.out_dir / 'last.pt'} was written with other settings (options "
                             f"or {BUDGET_ENV}); resume with the same ones, or train into a new "
                             f"folder")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.total_steps = state["total_steps"]  # the budget calibrated when the run began
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.epoch, self.step, self.history = state["epoch"], state["step"], state["history"]
