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
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler, Subset
from tqdm.auto import tqdm

from .budget import Budget, budget_scale
from .checkpoint import CHECKPOINT, check_resume, load_checkpoint, resumable, run_settings
from .config import PRESETS, TrainConfig, plain
from .data import IGNORE_INDEX, DataError, pad_collate
from .evaluate import EvalResult, evaluate
from .history import History
from .optim import (
    Schedule,
    build_optimizer,
    build_scheduler,
    freeze_batchnorm,
    poly_lr,
)
from .rundir import RunFolder, RunLock, start_rule
from .runtime import Runtime, StopSignals, amp_dtype, cpu_threads
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


_BAD_LOSS = (". Train again with a lower learning rate (now {lr}) or without AMP, or check the "
             "data for NaNs")
_BAD_WEIGHTS = ("the weights became NaN or infinite in step {step}. Train again with a lower "
                "learning rate (now {lr}) or other optimizer settings")


def _optimization(model: nn.Module, config: TrainConfig, steps_per_epoch: int,
                  schedule: Schedule, device: torch.device, amp: torch.dtype | None) -> tuple:
    """The optimizer, the learning-rate schedule, the gradient scaler (fp16 only) and the
    run's length in steps."""
    optimizer = build_optimizer(model, config)
    budget = Budget(steps_per_epoch=steps_per_epoch, epochs=config.epochs, steps=config.steps,
                    seconds=config.time_budget_s)
    scheduler = build_scheduler(optimizer, lambda: budget.total_steps, schedule,
                                config.poly_power, config.warmup_steps)
    scaler = torch.amp.GradScaler(device.type, enabled=amp == torch.float16)
    return optimizer, scheduler, scaler, budget


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
        self.model = _batch_norm(model, config, self.runtime).to(self.device,
                                                                  memory_format=self.memory_format)
        self.forward = _wrap(self.model, self.runtime, config.compile)
        self.train_set, self.val_set = SeededSamples(train_set, config.seed), val_set
        self.batch = _process_batch(config.batch_size, self.runtime.world_size, len(train_set))
        self.batches = _EpochBatches(self.train_set, self.batch, self.runtime, config)
        self.steps_per_epoch = self.batches.steps_per_epoch
        self.optimizer, self.scheduler, self.scaler, self.budget = _optimization(
            self.model, config, self.steps_per_epoch, schedule, self.device, self.amp_dtype)
        self.step, self.train_seconds, self.history = 0, 0.0, History()
        self._saved_at, self.folder = time.monotonic(), RunFolder(self.out_dir)
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

    def fit(self, resume: bool = False, overwrite: bool = True) -> History:
        """Train to the planned number of steps in the locked ``out_dir``; returns the history.
        ``resume`` continues its checkpoint; else one there is kept as ``last.pt.bak`` with
        ``overwrite`` (the library's default: notebook cells run again) and refused without
        (the command line's default). The rules: :mod:`rnlib.rundir`."""
        lock = RunLock(self.out_dir) if self.runtime.is_main else contextlib.nullcontext()
        with cpu_threads(self.config.threads), lock:
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
                        raise self._interrupted(signals.requested)
                    started = time.perf_counter()
                    images, masks = next(batches)
                    loss, stop = self._train_step(images, masks, signals.requested is not None)
                    self.step += 1
                    self.train_seconds += time.perf_counter() - started
                    self._after_step(loss, bar)
                    if stop:
                        raise self._interrupted(signals.requested or signal.SIGINT)
        except (TrainingInterrupted, NonFiniteLossError, DataError):
            if _finite(self.model):
                self.save()  # the weights are those of the last whole step
            raise
        except KeyboardInterrupt:  # a second signal, or a Ctrl-C no handler caught
            number = signals.requested or signal.SIGINT
            if self._updating or not _finite(self.model):
                raise TrainingInterrupted(
                    self.folder.kept(f"interrupted inside step {self.step + 1}"), number) from None
            self.save()
            raise self._interrupted(number) from None
        finally:
            self._signals = None
            bar.close()
        return self.history

    def _interrupted(self, signum: int) -> TrainingInterrupted:
        return TrainingInterrupted(self.folder.stopped("interrupted", self.step), signum)

    def _begin(self, resume: bool, overwrite: bool) -> None:
        restore = (self.folder.open(resume, overwrite, _checkpoint_bytes(self.model))
                   if self.runtime.is_main else start_rule(self.out_dir, resume, overwrite))
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
        with _statistics_kept(self.model) as put_back:  # a signal before the update: no change
            with torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32,
                                enabled=self.amp_dtype is not None):
                logits = self.forward(images)  # (N, K, H, W)
            loss = F.cross_entropy(logits.float(), masks, ignore_index=IGNORE_INDEX)
            shared = self.runtime.all_reduce(torch.stack(
                [loss.detach(), torch.tensor(float(stop_requested), device=loss.device)])
            ).tolist()
            mean_loss = shared[0] / self.runtime.world_size
            if not math.isfinite(mean_loss):  # decided by every process alike, before updating
                put_back()  # the forward pass put NaNs into batch norm's statistics
                what = f"the loss became {mean_loss}"
                raise NonFiniteLossError(self.folder.stopped(what, self.step)
                                         + _BAD_LOSS.format(lr=self.config.lr))
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
        self._updating = True
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self._updating = False
        if not _finite(self.model):  # e.g. a NaN momentum: the loss is still finite
            raise NonFiniteLossError(self.folder.kept(_BAD_WEIGHTS.format(
                step=self.step + 1, lr=self.config.lr)))
        return mean_loss, shared[1] > 0

    def _after_step(self, loss: float, bar: tqdm) -> None:
        """Record the step; re-plan a timed run; close an epoch; evaluate and save when due."""
        self.history.step_loss.append(loss)
        if self.budget.observe(self.step, self.train_seconds):
            bar.total = self.total_steps
        bar.update()
        bar.set_postfix(loss=f"{loss:.3f}", epoch=self.epoch + 1)
        ends = self.step % self.steps_per_epoch == 0 or self.step >= self.total_steps
        if ends:
            self.history.record_epoch(self.step, self.steps_per_epoch,
                                      self.optimizer.param_groups[0]["lr"], self.train_seconds)
        if self.val_set is not None and _evaluation_due(self.config, self.step, self.epoch,
                                                        self.steps_per_epoch, self.total_steps):
            self.history.record_evaluation(self.step, self.train_seconds, self.evaluate())
        minutes = (time.monotonic() - self._saved_at) / 60
        if ends or _save_due(self.config, self.step, minutes):
            self.save()

    def evaluate(self, dataset: Dataset | None = None) -> EvalResult:
        """Metrics of the current model on ``dataset`` (default: the validation set); under
        ``torchrun`` each process evaluates a share and the counts are summed."""
        data = self.val_set if dataset is None else dataset
        loader = _share(data, self.runtime, self.batch, self.config.num_workers)
        signals = self._signals  # one process: a signal stops the evaluation at the next batch
        stop = None if signals is None or self.runtime.distributed else signals.asked
        with cpu_threads(self.config.threads):  # as it trained
            return evaluate(self.model, loader, self.config.num_classes, device=self.device,
                            channels_last=self.config.channels_last, stop=stop,
                            reduce=self.runtime.all_reduce, amp_dtype=self.amp_dtype)

    def seconds_per_step(self, steps: int = 3) -> float:
        """Time ``steps`` training steps after a warm-up step (which also pays for compiling),
        then put the weights, optimizer, schedule and scaler back as they were."""
        batch = next(iter(DataLoader(self.train_set, self.batch)))
        state = (self.model, self.optimizer, self.scheduler, self.scaler)
        return _seconds_per_step(self._train_step, batch, state, steps)

    def save(self) -> None:
        """Write ``out_dir/last.pt`` and ``history.json`` atomically (rank 0 only). Weights
        that are not finite are never written; a full or read-only disk is one OSError that
        names the folder and the command that resumes."""
        self._saved_at = time.monotonic()
        if not self.runtime.is_main:
            return
        if not _finite(self.model):
            raise NonFiniteLossError(self.folder.kept(
                f"the weights at step {self.step} are NaN or infinite and were not saved"))
        self.folder.write({
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(),
            "step": self.step, "epoch": self.epoch, "total_steps": self.total_steps,
            "train_seconds": self.train_seconds, "history": self.history.to_dict(),
            "config": plain(asdict(self.config)), "settings": run_settings(self.config),
            "data": self.data_fingerprint,
        }, json.dumps(self.history.to_dict(), indent=1))

    def _restore(self, state: dict) -> None:
        check_resume(state, self.config, self.data_fingerprint, self.folder.checkpoint)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.budget.total_steps = state["total_steps"]  # as planned when the run began
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.step, self.train_seconds = state["step"], state["train_seconds"]
        self.history = History.from_dict(state["history"])
        self.folder.saved_step = state["step"]



def _evaluation_due(c: TrainConfig, step: int, epoch: int, steps_per_epoch: int,
                    total_steps: int) -> bool:
    """Whether the run evaluates after ``step``: at its end, every ``eval_every_steps`` steps,
    and at the end of every ``eval_every``-th epoch."""
    epoch_end = step % steps_per_epoch == 0
    return (step >= total_steps or bool(c.eval_every_steps and step % c.eval_every_steps == 0)
            or bool(epoch_end and c.eval_every and epoch % c.eval_every == 0))


def _save_due(c: TrainConfig, step: int, minutes: float) -> bool:
    """Whether the run saves between epochs: every ``save_every_steps`` steps, or when
    ``save_every_minutes`` have passed since the last save."""
    return bool((c.save_every_steps and step % c.save_every_steps == 0)
                or (c.save_every_minutes and minutes >= c.save_every_minutes))


def _share(data: Dataset, runtime: Runtime, batch: int, workers: int) -> DataLoader:
    """Batches of this process's share of ``data`` (every world_size-th sample)."""
    shard = Subset(data, range(runtime.rank, len(data), runtime.world_size))
    return DataLoader(shard, batch_size=batch, num_workers=workers, collate_fn=pad_collate)


def _seconds_per_step(train_step: Callable, batch: tuple[torch.Tensor, torch.Tensor],
                      parts: tuple, steps: int) -> float:
    """The mean time of ``steps`` calls of ``train_step`` on ``batch`` after a warm-up call,
    with ``parts`` (objects with a state dict) put back as they were afterwards."""
    saved = [copy.deepcopy(x.state_dict()) for x in parts]
    train_step(*batch)  # warm-up: first-call costs are not the rate
    start = time.perf_counter()
    for _ in range(steps):
        train_step(*batch)
    elapsed = (time.perf_counter() - start) / steps
    for x, state in zip(parts, saved):
        x.load_state_dict(state)
    return elapsed


@contextlib.contextmanager
def _statistics_kept(model: nn.Module) -> Iterator[Callable[[], None]]:
    """Yields a function that puts ``model``'s buffers (batch norm's statistics, small) back as
    they were on entry; an interrupt inside the block puts them back too."""
    saved = [b.clone() for b in model.buffers()]

    def put_back() -> None:
        with torch.no_grad():
            for b, value in zip(model.buffers(), saved):
                b.copy_(value)

    try:
        yield put_back
    except KeyboardInterrupt:
        put_back()
        raise


def _checkpoint_bytes(model: nn.Module) -> int:
    """About the size of a run's checkpoint: the weights and buffers, the optimizer's state
    (two values a weight at most: AdamW's moments), and 1 MiB for the rest."""
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    buffers = sum(b.numel() * b.element_size() for b in model.buffers())
    return 3 * weights + buffers + 2**20


def _finite(model: nn.Module) -> bool:
    """Whether every weight and buffer is finite. Runs after every step, so it first sums each
    tensor (a NaN or an infinity makes its sum non-finite; 15x cheaper than testing every
    element) and tests element by element only when a sum is not finite, which overflow alone
    can also cause."""
    tensors = [t for t in itertools.chain(model.parameters(), model.buffers())
               if t.is_floating_point()]
    if bool(torch.isfinite(torch.stack([t.sum() for t in tensors])).all()):
        return True
    return bool(torch.stack([torch.isfinite(t).all() for t in tensors]).all())


def _fingerprint(dataset: Dataset) -> str | None:
    """The fingerprint of a dataset's files (:meth:`rnlib.data.Source.fingerprint`), which
    resuming compares; None for data that has none (generated, in memory)."""
    source = getattr(dataset, "source", None)
    return source.fingerprint() if source is not None else None
