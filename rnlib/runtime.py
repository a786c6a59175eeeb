"""Where a run runs: its device, its processes (one, or several under ``torchrun``), and the
signals that ask it to stop.

One process per GPU (or per CPU share) under ``torchrun``, with PyTorch's own
DistributedDataParallel: ``torchrun`` sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``, and
:meth:`Runtime.start` joins the process group (NCCL on GPUs, gloo on CPUs). Rank 0 writes
checkpoints, logs and progress bars; every rank trains and evaluates its share.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["choose_device", "Runtime", "StopSignals"]


def choose_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    """``auto``: this process's GPU when there is one, else the CPU; or ``cpu``, ``cuda``,
    ``cuda:N``. A GPU asked for on a machine without one is a clear error."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r} asked for, but this machine has no CUDA GPU; "
                             f"use --device cpu (or auto)")
        if device.index is None:
            device = torch.device("cuda", local_rank % torch.cuda.device_count())
    return device


@dataclass
class Runtime:
    """This process's place in the run: ``rank`` of ``world_size`` processes, and its device."""

    device: torch.device
    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @classmethod
    def start(cls, device: str = "auto") -> Runtime:
        """The runtime of this process: joins the process group when ``torchrun`` (or the
        same environment variables) started it, else a single process."""
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        if world_size == 1:
            return cls(choose_device(device))
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        chosen = choose_device(device, local_rank)
        if not dist.is_initialized():
            if chosen.type == "cuda":
                torch.cuda.set_device(chosen)
            dist.init_process_group("nccl" if chosen.type == "cuda" else "gloo")
        return cls(chosen, dist.get_rank(), dist.get_world_size())

    @contextlib.contextmanager
    def main_first(self) -> Iterator[None]:
        """Run a block in rank 0 first, then in the others (e.g. making a dataset's cache
        that all of them then read)."""
        if self.distributed and not self.is_main:
            dist.barrier()
        yield
        if self.distributed and self.is_main:
            dist.barrier()

    def all_reduce(self, tensor: torch.Tensor) -> torch.Tensor:
        """The sum of ``tensor`` over every process, in place (itself alone in one process)."""
        if self.distributed:
            dist.all_reduce(tensor)
        return tensor


class StopSignals:
    """While active, Ctrl-C (SIGINT) and SIGTERM (what schedulers send) set ``requested``
    instead of interrupting: the training loop finishes its step and stops there, whole. A
    second signal (either) raises KeyboardInterrupt at once, so that a step that hangs (a
    slow disk) still ends in a save of the last whole step. Outside the main thread signals
    cannot be caught; ``requested`` then stays None and Ctrl-C raises KeyboardInterrupt as
    usual."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.requested: int | None = None  # the signal's number
        self._previous: dict[int, object] = {}

    def _handle(self, signum: int, frame) -> None:
        if self.requested is not None:  # the second: act now
            raise KeyboardInterrupt(f"signal {signum} again")
        self.requested = signum

    def asked(self) -> bool:
        """Whether a signal asked the run to stop."""
        return self.requested is not None

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for s in self.SIGNALS:
                self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous.clear()
