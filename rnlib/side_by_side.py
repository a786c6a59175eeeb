"""Runs trained side by side on a CPU: one process per core, each computing on one thread.

The order of a convolution's sums follows the thread count, and so do a run's digits; a run on
one thread gives the same digits on any number of cores. Two one-thread runs side by side also
do more work than one two-thread run after the other (1.3x on the course's 2 cores: README,
"One thread per run"). ``rnlib compare`` and the notebooks that call
:func:`rnlib.compare.compare` train this way when their config asks for one thread (every CPU
preset does).

A signal to this process (Ctrl-C, SIGTERM, a notebook's interrupt) is passed on once to every
run, which stops at the end of its step and keeps its checkpoint, as a lone run does, and no
run begins after it; the runs sit outside the terminal's process group, so that Ctrl-C reaches
them only through this one. On Linux a run dies with this process when it is killed (a grader
that kills a kernel past its time limit leaves no run training behind).
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait

import torch

from .runtime import StopSignals, choose_device
from .train import TrainConfig, TrainingInterrupted

__all__ = ["processes_for", "run_side_by_side"]


def processes_for(config: TrainConfig, runs: int) -> int:
    """How many processes train ``runs`` runs of ``config`` side by side: one per core (up to
    ``runs``) when the config computes on one CPU thread; else 1, meaning this process (also
    under ``torchrun``, whose processes already share the machine)."""
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if config.threads != 1 or distributed or choose_device(config.device).type != "cpu":
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(cores or 1, runs))


class _NotBegun:
    """A job that a worker skipped because a signal had come first."""


_stop = None  # in a worker: the event that the parent sets when a signal comes


def _interrupt(signum: int, frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")  # outside training; training takes it over


def _start_worker(stop, parent: int) -> None:
    """A worker leaves the terminal's process group (Ctrl-C reaches it once, forwarded), dies
    with its parent, turns SIGTERM into KeyboardInterrupt as SIGINT is, and computes on one
    thread."""
    global _stop
    _stop = stop
    if hasattr(os, "setpgrp"):
        os.setpgrp()
    if sys.platform == "linux":  # PR_SET_PDEATHSIG: killed with the parent, not orphaned
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)
        if os.getppid() != parent:  # it died before: the kill above will never come
            os._exit(1)
    for number in StopSignals.SIGNALS:
        signal.signal(number, _interrupt)
    torch.set_num_threads(1)


def _job(work: Callable, job: tuple):
    """``work(*job)``, unless a signal came before the worker took the job."""
    return _NotBegun() if _stop.is_set() else work(*job)


def run_side_by_side(work: Callable, jobs: Sequence[tuple], processes: int,
                     done: Callable[[int, object], None] | None = None) -> list:
    """``work(*job)`` for every job, in ``processes`` new processes of one thread each; the
    results in the jobs' order. ``done(i, result)`` is called as job ``i`` finishes. A signal
    stops every running job at its step (each keeps its checkpoint), cancels those not started
    and raises one :class:`TrainingInterrupted`; a job's own error is raised as it is."""
    results: list = [None] * len(jobs)
    context = multiprocessing.get_context("spawn")  # a fresh interpreter: no forked threads
    stop = context.Event()
    with ProcessPoolExecutor(processes, mp_context=context, initializer=_start_worker,
                             initargs=(stop, os.getpid())) as pool, StopSignals() as signals:
        pending: dict[Future, int] = {pool.submit(_job, work, job): i
                                      for i, job in enumerate(jobs)}
        while pending:
            finished, _ = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            if signals.requested is not None and not stop.is_set():
                stop.set()  # no job begins after this
                for child in multiprocessing.active_children():
                    os.kill(child.pid, signals.requested)
            for future in finished:
                i = pending.pop(future)
                error = future.exception()
                if error is not None and not isinstance(error, KeyboardInterrupt):
                    stop.set()  # those running finish and keep their runs
                    raise error
                results[i] = error if error is not None else future.result()
                if error is None and done is not None and not isinstance(results[i], _NotBegun):
                    done(i, results[i])
    stopped = [r for r in results if isinstance(r, TrainingInterrupted)]
    if signals.requested is not None or stopped:
        first = f" (the first: {stopped[0]})" if stopped else ""
        finished = sum(not isinstance(r, (KeyboardInterrupt, _NotBegun)) for r in results)
        raise TrainingInterrupted(
            f"{len(stopped)} runs side by side stopped at their current steps, each with its "
            f"checkpoint{first}; {finished} of {len(jobs)} had finished; continue with "
            f"resume=True (--resume)", signals.requested or stopped[0].signum)
    return results
