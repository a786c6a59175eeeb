"""Where a run runs: its device, the number format it computes in (AMP), its processes (one,
or several under ``torchrun``), and the signals that ask it to stop.

Mixed precision (``--amp``, ``TrainConfig.amp``) follows the processor: fp16 with a gradient
scaler on a CUDA GPU, bfloat16 on a CPU that computes it natively (AVX512-BF16 or AMX on x86,
the BF16 extension on Arm). A CPU without it would emulate bfloat16 and run slower than fp32,
so AMP is refused there.

Training runs the float32 model under autocast (float32 master weights, bf16 or fp16
convolutions). Inference on the CPU runs a bfloat16 copy of the model instead
(:class:`BF16Inference`): autocast casts around every convolution and keeps the element-wise work
(sums, resizes, pooling) in float32, while a bf16 model halves the bytes of all of it.
:func:`inference_model` is the one rule that picks between the two.

One process per GPU (or per CPU share) under ``torchrun``, with PyTorch's own
DistributedDataParallel: ``torchrun`` sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``, and
:meth:`Runtime.start` joins the process group (NCCL on GPUs, gloo on CPUs). Rank 0 writes
checkpoints, logs and progress bars; every rank trains and evaluates its share.
"""

from __future__ import annotations

import atexit
import contextlib
import copy
import os
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from .models.base import check_images

__all__ = ["cpu_threads", "choose_device", "BF16_CAPABILITIES", "native_bf16", "amp_dtype",
           "Autocast", "BF16Inference", "inference_model", "Runtime", "StopSignals"]


@contextlib.contextmanager
def cpu_threads(threads: int | None) -> Iterator[None]:
    """Compute with ``threads`` CPU threads inside the block (None: leave torch's setting), and
    put the previous count back after it."""
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


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


# the CPU capabilities (torch.cpu.get_capabilities) that compute bfloat16 in hardware
BF16_CAPABILITIES = ("avx512_bf16", "amx_bf16", "bf16", "sve_bf16")


def native_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively, as PyTorch's own query of the processor
    (``torch.cpu.get_capabilities``) reports it: AVX512-BF16 or AMX-BF16 on x86, BF16 on Arm."""
    capabilities = torch.cpu.get_capabilities()
    return any(capabilities.get(name, False) for name in BF16_CAPABILITIES)


def amp_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of an AMP setting on ``device`` (None: fp32).

    ``on`` (the ``--amp`` flag): fp16 on CUDA (the Trainer adds a gradient scaler), bf16 on a
    CPU that computes it natively. ``auto`` (the default): bf16 on CUDA (fp16 where the GPU
    lacks bf16), fp32 on the CPU. ``native`` (the course's ``cpu-quick``): bf16 wherever the
    hardware computes it (a GPU with bf16, a CPU with AVX512-BF16 or AMX), fp32 elsewhere.
    ``bf16`` and ``fp16`` as named; ``off``: fp32. bf16 on a CPU without native support and
    fp16 on any CPU are refused with a ValueError that says why.
    """
    if amp == "native":
        native = torch.cuda.is_bf16_supported() if device.type == "cuda" else native_bf16()
        return torch.bfloat16 if native else None
    if amp == "off" or (amp == "auto" and device.type != "cuda"):
        return None
    if device.type == "cuda":
        if amp == "auto":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.bfloat16 if amp == "bf16" else torch.float16
    if amp == "fp16":
        raise ValueError("amp fp16 is for CUDA GPUs; on the CPU use --amp (bfloat16) or amp off")
    if not native_bf16():
        raise ValueError("--amp on this CPU: it has no native bfloat16 (no AVX512-BF16 or AMX; "
                         "torch.cpu.get_capabilities()), so bf16 would be emulated and slower "
                         "than fp32; drop --amp (amp off)")
    return torch.bfloat16


class Autocast(nn.Module):
    """``model`` run under autocast in ``dtype`` (from :func:`amp_dtype`), giving float32
    logits: how ``rnlib eval`` and ``rnlib bench`` run a model in fp16 or bf16 on CUDA (on
    the CPU, :class:`BF16Inference`). The weights stay float32 and are ``model``'s own; so is
    the mode (train or eval)."""

    def __init__(self, model: nn.Module, dtype: torch.dtype) -> None:
        super().__init__()
        self.model, self.dtype = model, dtype
        self.train(model.training)  # a new module is in training mode: take the model's
        self.in_channels = getattr(model, "in_channels", 3)
        self.num_classes = getattr(model, "num_classes", None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, dtype=self.dtype):
            return self.model(x).float()


class BF16Inference(nn.Module):
    """A bfloat16 copy of ``model`` for inference: weights and activations in bf16, images of
    any float dtype in (checked as given, by :func:`rnlib.models.check_images`), float32
    logits out, so that metrics, argmax and export verification need no change. Batch norm
    keeps its float32 statistics and scale, as under autocast (PyTorch's CPU kernel takes bf16
    maps with float32 parameters, as fast as all-bf16); a folded batch norm
    (:func:`rnlib.deploy.fuse_batchnorm`) is a bf16 convolution like any other. ``model`` is
    not changed; the copy is taken now, in eval mode, and does not train: training runs the
    float32 model under autocast."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        with torch.no_grad():  # a copy of the weights, never trained: no autograd history
            self.model = copy.deepcopy(model)
            self.model.zero_grad()  # drops the copied gradients
            self.model.to(torch.bfloat16).requires_grad_(False)
            for source, module in zip(model.modules(), self.model.modules()):
                if isinstance(module, _BatchNorm):  # back to float32, unrounded
                    module.float().load_state_dict(source.state_dict())
        self.in_channels = getattr(model, "in_channels", 3)
        self.num_classes = getattr(model, "num_classes", None)
        self.eval()

    def train(self, mode: bool = True) -> BF16Inference:
        if mode:
            raise ValueError("a bfloat16 inference copy does not train: train the float32 "
                             "model (with --amp it trains under autocast), then copy it")
        return super().train(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_images(x, self.in_channels)  # as the caller gave it: a uint8 batch is refused
        return self.model(x.to(torch.bfloat16)).float()


def inference_model(model: nn.Module, dtype: torch.dtype | None) -> nn.Module:
    """``model`` set up for inference in ``dtype`` (from :func:`amp_dtype`; None: ``model``
    itself, in float32): bf16 on the CPU is a :class:`BF16Inference` copy, anything else
    (fp16 or bf16 on CUDA) runs under :class:`Autocast`. Training always uses autocast."""
    if dtype is None:
        return model
    weight = next(model.parameters(), None)
    if dtype == torch.bfloat16 and (weight is None or weight.device.type == "cpu"):
        return BF16Inference(model)
    return Autocast(model, dtype)


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
            if chosen.type == "cpu":
                atexit.register(_leave_gloo_group)
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


def _leave_gloo_group() -> None:
    """Leave the gloo process group while the interpreter is still whole. Left to the
    interpreter's shutdown, gloo's threads can abort the process ("terminate called without an
    active exception", SIGABRT; pytorch/pytorch#179291), which failed a finished two-process
    run. NCCL is left as it is: destroying its group while a failed rank's peers still wait in
    a collective can hang, and torchrun ends those peers itself."""
    if dist.is_initialized():
        dist.destroy_process_group()


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
