"""Training: one Trainer for every model, on one process or several under ``torchrun``.

The recipe follows RefineNet's (Lin et al., §4): cross-entropy with an ignore index, SGD with
momentum (or AdamW), a lower learning rate for a pretrained backbone, a poly schedule. The
Trainer composes small parts, each in a module of its own: the run's length
(:mod:`rnlib.budget`), the optimizer, schedule and mixed precision (:mod:`rnlib.optim`),
checkpoints (:mod:`rnlib.checkpoint`), seeds (:mod:`rnlib.seeding`), and the device, the
processes and stop signals (:mod:`rnlib.runtime`).

Nothing is lost: a checkpoint is written at the end of every epoch, every ``save_every_steps``
steps or ``save_every_minutes`` minutes, and at the current step when Ctrl-C or SIGTERM arrives,
the loss turns NaN, or a sample cannot be read. ``fit(resume=True)`` continues from it to the
weights an uninterrupted run reaches. A run holds its folder's lock and follows its rules
(:mod:`rnlib.rundir`), and never writes weights that are NaN or infinite.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import json
import math
import signal
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

from .atomic import write_text_atomic
from .budget import BUDGET_ENV, Budget, budget_scale
from .checkpoint import CHECKPOINT, load_checkpoint, resumable, run_settings, save_checkpoint
from .config import PRESETS, TrainConfig, plain
from .data import IGNORE_INDEX, DataError, pad_collate
from .evaluate import EvalResult, evaluate
from .folders import check_writable
from .history import History
from .optim import (
    Schedule,
    amp_dtype,
    build_optimizer,
    build_scheduler,
    freeze_batchnorm,
    poly_lr,
)
from .rundir import HISTORY, RunLock, back_up, check_free_space, save_failure, start_rule
from .runtime import Runtime, StopSignals
from .seeding import DROPOUT, SeededSamples, derive_seed

__all__ = ["TrainConfig", "PRESETS", "Trainer", "NonFiniteLossError", "TrainingInterrupted",
           "budget_scale", "load_checkpoint", "resumable"]


class NonFiniteLossError(FloatingPointError):
    """The loss or the weights became NaN or infinite; a checkpoint of the last good step is
    kept (a non-finite checkpoint is never written)."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM stopped the run after a whole step, which a checkpoint holds;
    ``signum`` is the signal (the shell's exit status is 128 + signum: 130, 143)."""

    def __init__(self, message: str, signum: int = signal.SIGINT) -> None:
        super().__init__(message)
        self.signum = int(signum)


class _Resumable(Sampler):
    """A sampler that skips its first ``skip`` indices: an epoch resumed in its middle."""

    def __init__(self, sampler: Sampler) -> None:
        self.sampler, self.skip = sampler, 0

    def __iter__(self) -> Iterator[int]:
        return itertools.islice(iter(self.sampler), self.skip, None)

    def __len__(self) -> int:
        return len(self.sampler) - self.skip


def _batch_norm(model: nn.Module, config: TrainConfig, runtime: Runtime) -> nn.Module:
    """``model`` with batch norm as the config asks: frozen, or synchronised across GPUs."""
    if config.freeze_bn:
        freeze_batchnorm(model)
    if config.sync_bn and runtime.distributed:
        if runtime.device.type != "cuda":
            raise ValueError("sync_bn needs GPUs (SyncBatchNorm does not run on CPUs); "
                             "freeze batch norm instead (freeze_bn)")
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return model


def _train_mode(model: nn.Module, freeze_bn: bool) -> None:
    """Training mode, but for batch norm layers that the config freezes."""
    model.train()
    if freeze_bn:
        freeze_batchnorm(model)


def _wrap(model: nn.Module, runtime: Runtime, compile: bool) -> nn.Module:
    """What training steps call: the model, in DistributedDataParallel across processes,
    compiled on request. The Trainer's ``model`` stays the plain module (the weights are
    shared), so checkpoints and evaluation depend on neither."""
    if runtime.distributed:
        ids = [runtime.device.index] if runtime.device.type == "cuda" else None
        model = DistributedDataParallel(model, device_ids=ids)
    return torch.compile(model) if compile else model


def _process_batch(batch: int, world: int, samples: int) -> int:
    """Each process's share of the global batch, checked against the training set's size."""
    if batch % world:
        raise ValueError(f"batch_size {batch} does not divide among {world} processes; "
                         f"use a multiple of {world}")
    per_process = batch // world
    if samples // world < per_process:
        raise ValueError(f"the training set has {samples} samples, fewer than "
                         f"one batch of {batch}; lower batch_size or add data")
    return per_process


class _EpochBatches:
    """One process's training batches, epoch after epoch: its share of a shuffle drawn from
    ``(seed, epoch)`` (DistributedSampler), whole batches only."""

    def __init__(self, data: SeededSamples, batch: int, runtime: Runtime,
                 config: TrainConfig) -> None:
        self.data, self.batch = data, batch
        self.sampler = DistributedSampler(data, runtime.world_size, runtime.rank, shuffle=True,
                                          seed=config.seed, drop_last=True)
        self.loader = DataLoader(data, batch, sampler=_Resumable(self.sampler), drop_last=True,
                                 num_workers=config.num_workers,
                                 pin_memory=runtime.device.type == "cuda")
        self.steps_per_epoch = len(self.sampler) // batch

    def from_step(self, step: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The batches from ``step`` on; an epoch resumed in its middle skips what it already
        trained on."""
        epoch, done = divmod(step, self.steps_per_epoch)
        while True:
            self.sampler.set_epoch(epoch)
            self.data.set_epoch(epoch)
            self.loader.sampler.skip = done * self.batch
            yield from self.loader
            epoch, done = epoch + 1, 0


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
        self.memory_format = torch.channels_last if config.channels_last else torch.preserve_format
        self.model = _batch_norm(model, config, self.runtime).to(
            self.device, memory_format=self.memory_format)
        self.forward = _wrap(self.model, self.runtime, config.compile)
        self.train_set, self.val_set = SeededSamples(train_set, config.seed), val_set
        self.batch = _process_batch(config.batch_size, self.runtime.world_size, len(train_set))
        self.batches = _EpochBatches(self.train_set, self.batch, self.runtime, config)
        self.steps_per_epoch = self.batches.steps_per_epoch
        self.amp_dtype = amp_dtype(config.amp, self.device)
        self.scaler = torch.amp.GradScaler(self.device.type,
                                           enabled=self.amp_dtype == torch.float16)
        self.optimizer = build_optimizer(self.model, config)
        self.budget = Budget(steps_per_epoch=self.steps_per_epoch, epochs=config.epochs,
                             steps=config.steps, seconds=config.time_budget_s)
        self.scheduler = build_scheduler(self.optimizer, lambda: self.budget.total_steps,
                                         schedule, config.poly_power, config.warmup_steps)
        self.step, self.train_seconds = 0, 0.0
        self.history = History()
        self._saved_at = time.monotonic()
        self._saved_step: int | None = None  # the step that out_dir's checkpoint holds
        self._signals: StopSignals | None = None  # while fit runs
        self._updating = False  # inside the optimizer's update: the weights are not whole
        self.data_fingerprint = _fingerprint(train_set)

    @property
    def epoch(self) -> int:
        """Whole epochs done."""
        return self.step // self.steps_per_epoch

    @property
    def total_steps(self) -> int:
        return self.budget.total_steps

    # -- training ----------------------------------------------------------------------------
    def fit(self, resume: bool = False, overwrite: bool = True) -> History:
        """Train to the planned number of steps; returns the history.

        ``out_dir`` is locked for the run (:class:`rnlib.rundir.RunLock`). With ``resume`` the
        run continues ``out_dir``'s checkpoint (there must be one); else a checkpoint there is
        kept as ``last.pt.bak`` when ``overwrite`` (the library's default, for notebooks whose
        cells run again) and refused when not (the command line's default)."""
        with RunLock(self.out_dir) if self.runtime.is_main else contextlib.nullcontext():
            self._begin(resume, overwrite)
            return self._loop()

    def _loop(self) -> History:
        bar = tqdm(total=self.total_steps, initial=self.step, desc="train", leave=False,
                   disable=None if self.progress else True)  # None: off without a terminal
        batches, signals = self.batches.from_step(self.step), StopSignals()
        try:
            with signals:
                self._signals = signals
                while self.step < self.total_steps:
                    if signals.requested is not None and not self.runtime.distributed:
                        raise TrainingInterrupted(self._stopped("interrupted"),
                                                  signals.requested)
                    started = time.perf_counter()
                    images, masks = next(batches)
                    loss, stop = self._train_step(images, masks, signals.requested is not None)
                    self.step += 1
                    self.train_seconds += time.perf_counter() - started
                    self._after_step(loss, bar)
                    if stop:
                        raise TrainingInterrupted(self._stopped("interrupted"),
                                                  signals.requested or signal.SIGINT)
        except (TrainingInterrupted, NonFiniteLossError, DataError):
            if _finite(self.model):
                self.save()  # the weights are those of the last whole step
            raise
        except KeyboardInterrupt:  # a second signal, or a Ctrl-C no handler caught
            number = signals.requested or signal.SIGINT
            if self._updating or not _finite(self.model):
                raise TrainingInterrupted(self._kept(f"interrupted inside step {self.step + 1}"),
                                          number) from None
            self.save()
            raise TrainingInterrupted(self._stopped("interrupted"), number) from None
        finally:
            self._signals = None
            bar.close()
        return self.history

    def _begin(self, resume: bool, overwrite: bool) -> None:
        restore = start_rule(self.out_dir, resume, overwrite)
        if self.runtime.is_main:
            check_writable(self.out_dir, "checkpoints", "choose another output folder")
            if not restore:
                back_up(self.out_dir)
            check_free_space(self.out_dir, _checkpoint_bytes(self.model))
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed crop sizes: cuDNN picks its fastest
        if restore:
            self._restore(load_checkpoint(self.out_dir / CHECKPOINT))
        elif self.budget.timed:
            self.budget.plan(self.seconds_per_step())

    def _train_step(self, images: torch.Tensor, masks: torch.Tensor,
                    stop_requested: bool = False) -> tuple[float, bool]:
        """One optimizer step; returns the loss averaged over processes, and whether any
        process was asked to stop (all then stop after this same step)."""
        _train_mode(self.model, self.config.freeze_bn)
        torch.manual_seed(derive_seed(self.config.seed, DROPOUT, self.step, self.runtime.rank))
        images = images.to(self.device, non_blocking=True, memory_format=self.memory_format)
        masks = masks.to(self.device, non_blocking=True)
        buffers = [b.clone() for b in self.model.buffers()]  # batch norm's statistics, small

        def put_back_buffers() -> None:
            with torch.no_grad():
                for b, saved in zip(self.model.buffers(), buffers):
                    b.copy_(saved)

        try:  # until the update, a signal leaves the weights of the last whole step
            with torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32,
                                enabled=self.amp_dtype is not None):
                logits = self.forward(images)  # (N, K, H, W)
            loss = F.cross_entropy(logits.float(), masks, ignore_index=IGNORE_INDEX)
            shared = self.runtime.all_reduce(torch.stack(
                [loss.detach(), torch.tensor(float(stop_requested), device=loss.device)])
            ).tolist()
            mean_loss = shared[0] / self.runtime.world_size
            if not math.isfinite(mean_loss):  # decided by every process alike, before updating
                put_back_buffers()  # the forward pass put NaNs into batch norm's statistics
                raise NonFiniteLossError(self._stopped(f"the loss became {mean_loss}") + (
                    f". Train again with a lower learning rate (now {self.config.lr}) or "
                    f"without AMP, or check the data for NaNs"))
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
        except KeyboardInterrupt:
            put_back_buffers()
            raise
        self._updating = True
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self._updating = False
        if not _finite(self.model):  # e.g. a NaN momentum: the loss is still finite
            raise NonFiniteLossError(self._kept(
                f"the weights became NaN or infinite in step {self.step + 1}") + (
                f". Train again with a lower learning rate (now {self.config.lr}) or other "
                f"optimizer settings"))
        return mean_loss, shared[1] > 0

    def _stopped(self, what: str) -> str:
        return (f"{what} at step {self.step + 1}; {self.out_dir / CHECKPOINT} holds step "
                f"{self.step}: continue with resume=True (rnlib train --resume)")

    def _kept(self, what: str) -> str:
        """``what`` happened and the weights are not whole: what the folder still holds."""
        if self._saved_step is None:
            return f"{what}; no checkpoint was written yet: train again"
        return (f"{what}; {self.out_dir / CHECKPOINT} still holds step {self._saved_step}: "
                f"continue with resume=True (rnlib train --resume)")

    def _after_step(self, loss: float, bar: tqdm) -> None:
        """Record the step; re-plan a timed run; close an epoch; evaluate and save when due."""
        self.history.step_loss.append(loss)
        if self.budget.observe(self.step, self.train_seconds):
            bar.total = self.total_steps
        bar.update()
        bar.set_postfix(loss=f"{loss:.3f}", epoch=self.epoch + 1)
        c, last = self.config, self.step >= self.total_steps
        epoch_end = self.step % self.steps_per_epoch == 0
        if epoch_end or last:
            self.history.record_epoch(self.step, self.steps_per_epoch,
                                      self.optimizer.param_groups[0]["lr"], self.train_seconds)
        if self.val_set is not None and (
                last or (c.eval_every_steps and self.step % c.eval_every_steps == 0)
                or (epoch_end and c.eval_every and self.epoch % c.eval_every == 0)):
            self.history.record_evaluation(self.step, self.train_seconds, self.evaluate())
        minutes = (time.monotonic() - self._saved_at) / 60
        if epoch_end or last or (c.save_every_steps and self.step % c.save_every_steps == 0) \
                or (c.save_every_minutes and minutes >= c.save_every_minutes):
            self.save()

    def evaluate(self, dataset: Dataset | None = None) -> EvalResult:
        """Metrics of the current model on ``dataset`` (default: the validation set); under
        ``torchrun`` each process evaluates a share and the counts are summed."""
        data = self.val_set if dataset is None else dataset
        rank, world = self.runtime.rank, self.runtime.world_size
        loader = DataLoader(Subset(data, range(rank, len(data), world)), batch_size=self.batch,
                            num_workers=self.config.num_workers, collate_fn=pad_collate)
        signals = self._signals
        stop = None if signals is None or self.runtime.distributed else (
            lambda: signals.requested is not None)  # one process: a signal stops at the batch
        return evaluate(self.model, loader, self.config.num_classes, device=self.device,
                        channels_last=self.config.channels_last, reduce=self.runtime.all_reduce,
                        stop=stop)

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
        """Write ``out_dir/last.pt`` and ``history.json`` atomically (rank 0 only). Weights
        that are not finite are never written; a full or read-only disk is one OSError that
        names the folder and the command that resumes."""
        self._saved_at = time.monotonic()
        if not self.runtime.is_main:
            return
        if not _finite(self.model):
            raise NonFiniteLossError(self._kept(f"the weights at step {self.step} are NaN or "
                                                f"infinite and were not saved"))
        try:
            save_checkpoint({
                "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(),
                "step": self.step, "epoch": self.epoch, "total_steps": self.total_steps,
                "train_seconds": self.train_seconds, "history": self.history.to_dict(),
                "config": plain(asdict(self.config)), "settings": run_settings(self.config),
                "data": self.data_fingerprint,
            }, self.out_dir / CHECKPOINT)
            self._saved_step = self.step
            write_text_atomic(self.out_dir / HISTORY, json.dumps(self.history.to_dict(),
                                                                 indent=1))
        except OSError as err:
            raise save_failure(err, self.out_dir, self._saved_step) from err

    def _restore(self, state: dict) -> None:
        if state.get("settings") != run_settings(self.config):
            raise ValueError(f"{self.out_dir / CHECKPOINT} was written with other settings "
                             f"(options or {BUDGET_ENV}); resume with the same ones, or train "
                             f"into a new folder")
        if None not in (state.get("data"), self.data_fingerprint) \
                and state["data"] != self.data_fingerprint:
            raise ValueError(f"the training data changed since {self.out_dir / CHECKPOINT} was "
                             f"written (other files, sizes or modification times); resume with "
                             f"the same data, or train anew (--overwrite)")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.budget.total_steps = state["total_steps"]  # as planned when the run began
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.step, self.train_seconds = state["step"], state["train_seconds"]
        self.history = History.from_dict(state["history"])
        self._saved_step = state["step"]



def _checkpoint_bytes(model: nn.Module) -> int:
    """About the size of a run's checkpoint: the weights and buffers, the optimizer's state
    (two values a weight at most: AdamW's moments), and 1 MiB for the rest."""
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    buffers = sum(b.numel() * b.element_size() for b in model.buffers())
    return 3 * weights + buffers + 2**20


def _finite(model: nn.Module) -> bool:
    """Whether every weight and buffer is finite (one check, one synchronisation)."""
    tensors = [t for t in itertools.chain(model.parameters(), model.buffers())
               if t.is_floating_point()]
    return bool(torch.stack([torch.isfinite(t).all() for t in tensors]).all())


def _fingerprint(dataset: Dataset) -> str | None:
    """The fingerprint of a dataset's files (:meth:`rnlib.data.Source.fingerprint`), which
    resuming compares; None for data that has none (generated, in memory)."""
    source = getattr(dataset, "source", None)
    return source.fingerprint() if source is not None else None
