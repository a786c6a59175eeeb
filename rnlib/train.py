"""Training: one Trainer for every model, on one process or several under ``torchrun``.

The recipe follows RefineNet's (Lin et al., §4): cross-entropy with an ignore index, SGD with
momentum (or AdamW), a lower learning rate for a pretrained backbone, a poly schedule. The
Trainer composes small parts, each in a module of its own: the run's length
(:mod:`rnlib.budget`), the optimizer and schedule (:mod:`rnlib.optim`),
checkpoints (:mod:`rnlib.checkpoint`), seeds (:mod:`rnlib.seeding`), and the device, mixed
precision, the processes and stop signals (:mod:`rnlib.runtime`).

Nothing is lost: a checkpoint is written at the end of every epoch, every ``save_every_steps``
steps or ``save_every_minutes`` minutes, and at the current step when Ctrl-C or SIGTERM arrives,
the loss turns NaN, or a sample cannot be read. ``fit(resume=True)`` continues from it to the
weights an uninterrupted run reaches.
"""

from __future__ import annotations

import copy
import itertools
import json
import math
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler, Subset
from tqdm.auto import tqdm

from .budget import BUDGET_ENV, Budget, budget_scale
from .checkpoint import CHECKPOINT, load_checkpoint, resumable, run_settings, save_checkpoint
from .config import PRESETS, TrainConfig, plain
from .data import IGNORE_INDEX, DataError, pad_collate
from .evaluate import EvalResult, evaluate
from .optim import (
    Schedule,
    build_optimizer,
    build_scheduler,
    freeze_batchnorm,
    poly_lr,
)
from .runtime import Runtime, StopSignals, amp_dtype
from .seeding import DROPOUT, SeededSamples, derive_seed

__all__ = ["TrainConfig", "PRESETS", "Trainer", "NonFiniteLossError", "TrainingInterrupted",
           "budget_scale", "load_checkpoint", "resumable"]


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; a checkpoint of the last good step is kept."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM stopped the run after a whole step, which a checkpoint holds."""


class _Resumable(Sampler):
    """A sampler that skips its first ``skip`` indices: an epoch resumed in its middle."""

    def __init__(self, sampler: Sampler) -> None:
        self.sampler, self.skip = sampler, 0

    def __iter__(self) -> Iterator[int]:
        return itertools.islice(iter(self.sampler), self.skip, None)

    def __len__(self) -> int:
        return len(self.sampler) - self.skip


class Trainer:
    """Trains ``model`` on ``train_set``, evaluates on ``val_set``, checkpoints into ``out_dir``.

    ``schedule(step, total_steps, base_lr, power)`` gives the learning rate (default: the poly
    schedule). Under ``torchrun`` each process trains on its share of every batch of
    ``config.batch_size`` images, and only rank 0 writes checkpoints, history and progress.
    """

    def __init__(self, model: nn.Module, train_set: Dataset, val_set: Dataset | None,
                 config: TrainConfig, out_dir: str | Path, progress: bool = True,
                 schedule: Schedule = poly_lr) -> None:
        if config.num_classes is None:
            raise ValueError("config.num_classes is not set; rnlib.runs.train takes it from the "
                             "dataset, or set it yourself")
        self.config, self.out_dir = config, Path(out_dir)
        self.runtime = Runtime.start(config.device)
        self.device, self.progress = self.runtime.device, progress and self.runtime.is_main
        self.amp_dtype = amp_dtype(config.amp, self.device)  # refused here on a CPU without bf16
        self.memory_format = torch.channels_last if config.channels_last else torch.preserve_format
        if config.freeze_bn:
            freeze_batchnorm(model)
        if config.sync_bn and self.runtime.distributed:
            if self.device.type != "cuda":
                raise ValueError("sync_bn needs GPUs (SyncBatchNorm does not run on CPUs); "
                                 "freeze batch norm instead (freeze_bn)")
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        self.model = model.to(self.device, memory_format=self.memory_format)
        self.forward = self._wrap(self.model)
        self.train_set, self.val_set = SeededSamples(train_set, config.seed), val_set
        self.batch = self._process_batch()
        self.sampler = DistributedSampler(self.train_set, self.runtime.world_size,
                                          self.runtime.rank, shuffle=True, seed=config.seed,
                                          drop_last=True)
        self.loader = DataLoader(self.train_set, self.batch, sampler=_Resumable(self.sampler),
                                 drop_last=True, num_workers=config.num_workers,
                                 pin_memory=self.device.type == "cuda")
        self.steps_per_epoch = len(self.sampler) // self.batch
        self.scaler = torch.amp.GradScaler(self.device.type,
                                           enabled=self.amp_dtype == torch.float16)
        self.optimizer = build_optimizer(self.model, config)
        self.budget = Budget(steps_per_epoch=self.steps_per_epoch, epochs=config.epochs,
                             steps=config.steps, seconds=config.time_budget_s)
        self.scheduler = build_scheduler(self.optimizer, lambda: self.budget.total_steps,
                                         schedule, config.poly_power, config.warmup_steps)
        self.step, self.train_seconds = 0, 0.0
        self.history: dict[str, list] = {}
        self._saved_at = time.monotonic()

    # -- set-up ------------------------------------------------------------------------------
    def _wrap(self, model: nn.Module) -> nn.Module:
        """What training steps call: the model, in DistributedDataParallel across processes,
        compiled on request. ``self.model`` stays the plain module (the weights are shared), so
        checkpoints and evaluation depend on neither."""
        if self.runtime.distributed:
            ids = [self.device.index] if self.device.type == "cuda" else None
            model = DistributedDataParallel(model, device_ids=ids)
        return torch.compile(model) if self.config.compile else model

    def _process_batch(self) -> int:
        world, batch = self.runtime.world_size, self.config.batch_size
        if batch % world:
            raise ValueError(f"batch_size {batch} does not divide among {world} processes; "
                             f"use a multiple of {world}")
        per_process = batch // world
        if len(self.train_set) // world < per_process:
            raise ValueError(f"the training set has {len(self.train_set)} samples, fewer than "
                             f"one batch of {batch}; lower batch_size or add data")
        return per_process

    @property
    def epoch(self) -> int:
        """Whole epochs done."""
        return self.step // self.steps_per_epoch

    @property
    def total_steps(self) -> int:
        return self.budget.total_steps

    # -- training ----------------------------------------------------------------------------
    def fit(self, resume: bool = False) -> dict[str, list]:
        """Train to the planned number of steps; returns the history."""
        self._begin(resume)
        bar = tqdm(total=self.total_steps, initial=self.step, desc="train", leave=False,
                   disable=None if self.progress else True)  # None: off without a terminal
        batches, stepping = self._batches(), False
        try:
            with StopSignals() as signals:
                while self.step < self.total_steps:
                    started = time.perf_counter()
                    images, masks = next(batches)
                    stepping = True
                    loss, stop = self._train_step(images, masks, signals.requested is not None)
                    stepping = False
                    self.step += 1
                    self.train_seconds += time.perf_counter() - started
                    self._after_step(loss, bar)
                    if stop:
                        raise TrainingInterrupted(self._stopped("interrupted"))
        except (TrainingInterrupted, NonFiniteLossError, DataError):
            self.save()  # the weights are those of the last whole step
            raise
        except KeyboardInterrupt:  # a Ctrl-C that no handler caught (not the main thread)
            if stepping:
                raise TrainingInterrupted(f"interrupted inside step {self.step + 1}; the last "
                                          f"checkpoint in {self.out_dir} is kept") from None
            self.save()
            raise TrainingInterrupted(self._stopped("interrupted")) from None
        finally:
            bar.close()
        return self.history

    def _begin(self, resume: bool) -> None:
        if self.runtime.is_main:
            try:
                self.out_dir.mkdir(parents=True, exist_ok=True)
                probe = self.out_dir / ".write-test"
                probe.write_text("")
                probe.unlink()
            except OSError as err:
                raise OSError(f"cannot write checkpoints to {self.out_dir}: {err.strerror}; "
                              f"choose another output folder") from err
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed crop sizes: cuDNN picks its fastest
        if resume and (self.out_dir / CHECKPOINT).exists():
            self._restore(load_checkpoint(self.out_dir / CHECKPOINT))
        elif self.budget.timed:
            self.budget.plan(self.seconds_per_step())

    def _batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Batches from the current step on, epoch after epoch; an epoch resumed in its middle
        skips what it already trained on."""
        while True:
            epoch, done = divmod(self.step, self.steps_per_epoch)
            self.sampler.set_epoch(epoch)
            self.train_set.set_epoch(epoch)
            self.loader.sampler.skip = done * self.batch
            yield from self.loader

    def _train_mode(self) -> None:
        self.model.train()
        if self.config.freeze_bn:
            freeze_batchnorm(self.model)

    def _train_step(self, images: torch.Tensor, masks: torch.Tensor,
                    stop_requested: bool = False) -> tuple[float, bool]:
        """One optimizer step; returns the loss averaged over processes, and whether any
        process was asked to stop (all then stop after this same step)."""
        self._train_mode()
        torch.manual_seed(derive_seed(self.config.seed, DROPOUT, self.step, self.runtime.rank))
        images = images.to(self.device, non_blocking=True, memory_format=self.memory_format)
        masks = masks.to(self.device, non_blocking=True)
        buffers = [b.clone() for b in self.model.buffers()]  # batch norm's statistics, small
        with torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32,
                            enabled=self.amp_dtype is not None):
            logits = self.forward(images)  # (N, K, H, W)
        loss = F.cross_entropy(logits.float(), masks, ignore_index=IGNORE_INDEX)
        shared = self.runtime.all_reduce(torch.stack(
            [loss.detach(), torch.tensor(float(stop_requested), device=loss.device)])).tolist()
        mean_loss = shared[0] / self.runtime.world_size
        if not math.isfinite(mean_loss):  # decided by every process alike, before any update
            with torch.no_grad():  # the forward pass put NaNs into batch norm's statistics
                for b, saved in zip(self.model.buffers(), buffers):
                    b.copy_(saved)
            raise NonFiniteLossError(self._stopped(f"the loss became {mean_loss}") + (
                f". Train again with a lower learning rate (now {self.config.lr}) or without "
                f"AMP, or check the data for NaNs"))
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        return mean_loss, shared[1] > 0

    def _stopped(self, what: str) -> str:
        return (f"{what} at step {self.step + 1}; {self.out_dir / CHECKPOINT} holds step "
                f"{self.step}: continue with resume=True (rnlib train --resume)")

    def _after_step(self, loss: float, bar: tqdm) -> None:
        """Record the step; re-plan a timed run; close an epoch; evaluate and save when due."""
        self.history.setdefault("step_loss", []).append(loss)
        if self.budget.observe(self.step, self.train_seconds):
            bar.total = self.total_steps
        bar.update()
        bar.set_postfix(loss=f"{loss:.3f}", epoch=self.epoch + 1)
        c, last = self.config, self.step >= self.total_steps
        epoch_end = self.step % self.steps_per_epoch == 0
        if epoch_end or last:
            self._record_epoch()
        if self.val_set is not None and (
                last or (c.eval_every_steps and self.step % c.eval_every_steps == 0)
                or (epoch_end and c.eval_every and self.epoch % c.eval_every == 0)):
            self._record_evaluation()
        minutes = (time.monotonic() - self._saved_at) / 60
        if epoch_end or last or (c.save_every_steps and self.step % c.save_every_steps == 0) \
                or (c.save_every_minutes and minutes >= c.save_every_minutes):
            self.save()

    def _record_epoch(self) -> None:
        since = self.history["step"][-1] if self.history.get("step") else 0
        losses = self.history["step_loss"][since:self.step]
        record = {"epoch": self.step / self.steps_per_epoch, "step": self.step,
                  "train_loss": sum(losses) / len(losses),
                  "lr": self.optimizer.param_groups[0]["lr"], "elapsed_s": self.train_seconds}
        for key, value in record.items():
            self.history.setdefault(key, []).append(value)

    def _record_evaluation(self) -> None:
        result = self.evaluate()
        record = {"eval_step": self.step, "eval_elapsed_s": self.train_seconds,
                  "val_miou": result.miou, "val_pixel_accuracy": result.pixel_accuracy,
                  "val_boundary_f": result.boundary_f, "val_iou": result.iou}
        for key, value in record.items():
            self.history.setdefault(key, []).append(value)

    def evaluate(self, dataset: Dataset | None = None) -> EvalResult:
        """Metrics of the current model on ``dataset`` (default: the validation set); under
        ``torchrun`` each process evaluates a share and the counts are summed."""
        data = self.val_set if dataset is None else dataset
        rank, world = self.runtime.rank, self.runtime.world_size
        loader = DataLoader(Subset(data, range(rank, len(data), world)), batch_size=self.batch,
                            num_workers=self.config.num_workers, collate_fn=pad_collate)
        return evaluate(self.model, loader, self.config.num_classes, device=self.device,
                        channels_last=self.config.channels_last, reduce=self.runtime.all_reduce,
                        amp_dtype=self.amp_dtype)

    def seconds_per_step(self, steps: int = 3) -> float:
        """Time ``steps`` training steps after a warm-up step (which also pays for compiling),
        then put the weights, optimizer, schedule and scaler back as they were."""
        parts = (self.model, self.optimizer, self.scheduler, self.scaler)
        saved = [copy.deepcopy(x.state_dict()) for x in parts]
        images, masks = next(iter(DataLoader(self.train_set, self.batch)))
        self._train_step(images, masks)  # warm-up: first-call costs are not the rate
        start = time.perf_counter()
        for _ in range(steps):
            self._train_step(images, masks)
        elapsed = (time.perf_counter() - start) / steps
        for x, state in zip(parts, saved):
            x.load_state_dict(state)
        return elapsed

    # -- checkpoints -------------------------------------------------------------------------
    def save(self) -> None:
        """Write ``out_dir/last.pt`` and ``history.json`` (rank 0 only)."""
        self._saved_at = time.monotonic()
        if not self.runtime.is_main:
            return
        save_checkpoint({
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(),
            "step": self.step, "epoch": self.epoch, "total_steps": self.total_steps,
            "train_seconds": self.train_seconds, "history": self.history,
            "config": plain(asdict(self.config)), "settings": run_settings(self.config),
        }, self.out_dir / CHECKPOINT)
        (self.out_dir / "history.json").write_text(json.dumps(self.history, indent=1))

    def _restore(self, state: dict) -> None:
        if state.get("settings") != run_settings(self.config):
            raise ValueError(f"{self.out_dir / CHECKPOINT} was written with other settings "
                             f"(options or {BUDGET_ENV}); resume with the same ones, or train "
                             f"into a new folder")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.budget.total_steps = state["total_steps"]  # as planned when the run began
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.step, self.train_seconds = state["step"], state["train_seconds"]
        self.history = state["history"]

