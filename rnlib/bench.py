"""What a model costs: parameters, FLOPs and MACs, latency and peak memory at a given size.

FLOPs come from ``torch.utils.flop_counter``, which counts 2 FLOPs per multiply-accumulate
(MAC) of convolutions and matrix products and nothing for pooling, activations or resizing.
Papers often print MACs and call them FLOPs: RefineNet's "263 GFLOPs" are 263 GMACs at
512x512 (docs/design.md, "The authors' sizes and compute"). Every figure here says which
it is.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from .runtime import inference_model
from .tables import markdown_table

__all__ = ["Cost", "count_parameters", "count_flops", "measure_latency", "train_step",
           "measure_train_step", "alternate_train_steps", "conv_ceiling", "peak_memory",
           "measure", "format_table"]


@dataclass
class Cost:
    """The cost of one model at one input size; times in milliseconds, memory in MiB."""

    name: str
    params_m: float
    gflops: float
    gmacs: float
    latency_ms: float | None = None
    peak_mem_mib: float | None = None


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (all, or only those with ``requires_grad``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def _input(model: nn.Module, size: Sequence[int], batch: int, device: torch.device | str,
           channels_last: bool = False) -> torch.Tensor:
    channels = getattr(model, "in_channels", 3)
    x = torch.randn(batch, channels, *size, device=device)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def count_flops(model: nn.Module, size: Sequence[int], batch: int = 1, *,
                train: bool = False) -> int:
    """FLOPs of one forward pass at ``size`` = (H, W) (2 per MAC; see the module docstring),
    or with ``train`` of a forward and backward pass (the gradients of weights and inputs).

    The count is taken on the model's own device; for a model built under
    ``torch.device("meta")`` it takes no time and no memory.
    """
    device = next(model.parameters()).device
    with _prepared(model, train=train, channels_last=False), FlopCounterMode(
            display=False) as counter:
        if train:
            model(_input(model, size, batch, device)).float().sum().backward()
            model.zero_grad(set_to_none=True)
        else:
            with torch.no_grad():
                model(_input(model, size, batch, device))
    return counter.get_total_flops()


def _times(run, *, repeats: int, warmup: int, device: torch.device) -> list[float]:
    """Wall times in milliseconds of ``repeats`` calls of ``run`` after ``warmup`` calls, each
    between two device synchronisations (CUDA runs asynchronously)."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    times = []
    for i in range(warmup + repeats):
        sync()
        start = time.perf_counter()
        run()
        sync()
        if i >= warmup:
            times.append((time.perf_counter() - start) * 1e3)
    return times


@contextlib.contextmanager
def _prepared(model: nn.Module, train: bool, channels_last: bool):
    """The model in train or eval mode and in channels_last (or as it is) for a measurement;
    afterwards its mode and memory format are what they were."""
    was_training = model.training
    weight = next((p for p in model.parameters() if p.ndim == 4), None)  # a convolution's
    was_last = weight is not None and not weight.is_contiguous() and weight.is_contiguous(
        memory_format=torch.channels_last)
    model.train(train)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    try:
        yield
    finally:
        model.train(was_training)
        if channels_last and not was_last:
            model.to(memory_format=torch.contiguous_format)


def measure_latency(model: nn.Module, size: Sequence[int], batch: int = 1, *, repeats: int = 10,
                    warmup: int = 2, channels_last: bool = False) -> float:
    """Median wall time of one inference forward pass, in milliseconds: eval mode, under
    ``torch.inference_mode``; the model's mode and memory format are restored afterwards."""
    device = next(model.parameters()).device
    x = _input(model, size, batch, device, channels_last)
    with _prepared(model, train=False, channels_last=channels_last), torch.inference_mode():
        return statistics.median(_times(lambda: model(x), repeats=repeats, warmup=warmup,
                                        device=device))


def train_step(model: nn.Module, size: Sequence[int], batch: int = 2, *,
               channels_last: bool = False, amp_dtype: torch.dtype | None = None
               ) -> Callable[[], None]:
    """One SGD training step (forward, cross-entropy, backward, update; lr 1e-6, momentum) on
    one batch of random data, to call as often as wanted; ``amp_dtype`` runs the forward under
    autocast (fp16 with a gradient scaler). The model is used in its present mode and format."""
    device = next(model.parameters()).device
    x = _input(model, size, batch, device, channels_last)
    target = torch.randint(0, getattr(model, "num_classes", 2), (batch, *size), device=device)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-6, momentum=0.9)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)

    def step() -> None:
        with torch.autocast(device.type, dtype=amp_dtype or torch.float32,
                            enabled=amp_dtype is not None):
            logits = model(x)
        loss = torch.nn.functional.cross_entropy(logits.float(), target)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    return step


def measure_train_step(model: nn.Module, size: Sequence[int], batch: int = 2, *,
                       repeats: int = 3, warmup: int = 1, channels_last: bool = False,
                       amp_dtype: torch.dtype | None = None) -> float:
    """Median wall time of one :func:`train_step`, in milliseconds. The weights change; the
    model's mode and memory format are restored."""
    with _prepared(model, train=True, channels_last=channels_last):
        step = train_step(model, size, batch, channels_last=channels_last, amp_dtype=amp_dtype)
        return statistics.median(_times(step, repeats=repeats, warmup=warmup,
                                        device=next(model.parameters()).device))


def alternate_train_steps(model: nn.Module, size: Sequence[int], batch: int = 2, *,
                          dtypes: Sequence[torch.dtype | None] = (None, torch.bfloat16),
                          repeats: int = 3) -> dict[torch.dtype | None, float]:
    """Median milliseconds of one :func:`train_step` (train mode, channels_last) for each
    autocast dtype (None: fp32), after a warm-up step each (oneDNN builds its kernels once per
    number format), the dtypes alternating round by round so that a shared machine's drift
    hits them alike."""
    if repeats < 1:
        raise ValueError(f"repeats must be 1 or more (the rounds whose median is taken), got "
                         f"{repeats}")
    model.train()
    times: dict[torch.dtype | None, list[float]] = {dtype: [] for dtype in dtypes}
    for round_ in range(repeats + 1):
        for dtype in dtypes:
            ms = measure_train_step(model, size, batch, repeats=1, warmup=0,
                                    channels_last=True, amp_dtype=dtype)
            if round_:
                times[dtype].append(ms)
    return {dtype: statistics.median(values) for dtype, values in times.items()}


def conv_ceiling(device: torch.device | str = "cpu", *, channels_last: bool = True,
                 dtype: torch.dtype = torch.float32, repeats: int = 10) -> float:
    """GFLOP/s of a large 3x3 convolution (256 -> 256 channels, 56x56, batch 8), from its
    fastest run: the peak rate the machine reaches on the work that dominates these networks."""
    device = torch.device(device)
    conv = nn.Conv2d(256, 256, 3, padding=1, bias=False).to(device, dtype)
    x = torch.randn(8, 256, 56, 56, device=device, dtype=dtype)
    if channels_last:
        conv, x = conv.to(memory_format=torch.channels_last), x.contiguous(
            memory_format=torch.channels_last)
    flops = 2 * 256 * 256 * 9 * 56 * 56 * 8
    with torch.inference_mode():
        fastest = min(_times(lambda: conv(x), repeats=repeats, warmup=2, device=device))
    return flops / (fastest / 1e3) / 1e9


def peak_memory(model: nn.Module, size: Sequence[int], batch: int = 1, *,
                train: bool = False, channels_last: bool = False) -> float:
    """Peak memory allocated by one pass beyond the weights and the input, in MiB.

    Inference (``train=False``) or a forward and backward pass (``train=True``). On CUDA this is
    ``torch.cuda.max_memory_allocated``; on the CPU, the highest 'Total Allocated' that the
    PyTorch profiler records while the pass runs.
    """
    device = next(model.parameters()).device
    x = _input(model, size, batch, device, channels_last)

    def one_pass() -> None:
        if train:
            model(x).float().mean().backward()
            model.zero_grad(set_to_none=True)
        else:
            with torch.inference_mode():
                model(x)

    with _prepared(model, train=train, channels_last=channels_last):
        if device.type == "cuda":
            torch.cuda.synchronize()
            base = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
            one_pass()
            torch.cuda.synchronize()
            return (torch.cuda.max_memory_allocated() - base) / 2**20
        return _cpu_peak(one_pass) / 2**20


@contextlib.contextmanager
def _silent_stderr():
    """Hide the profiler's C++ start/stop chatter, which bypasses ``sys.stderr``."""
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _cpu_peak(fn) -> int:
    from torch.profiler import ProfilerActivity, profile

    with tempfile.TemporaryDirectory() as tmp:
        with _silent_stderr(), profile(activities=[ProfilerActivity.CPU],
                                       profile_memory=True) as prof:
            fn()
        path = os.path.join(tmp, "trace.json")
        prof.export_chrome_trace(path)
        with open(path) as f:
            events = json.load(f)["traceEvents"]
    totals = [e["args"]["Total Allocated"] for e in events
              if e.get("name") == "[memory]" and e["args"].get("Device Type", 0) == 0]
    return max(totals, default=0)


def measure(name: str, model: nn.Module, size: Sequence[int], *, batch: int = 1,
            latency: bool = True, memory: bool = True, channels_last: bool = False,
            repeats: int = 5, amp_dtype: torch.dtype | None = None) -> Cost:
    """Parameters, FLOPs/MACs and (optionally) latency and peak memory of ``model``; with
    ``amp_dtype`` (:func:`rnlib.runtime.amp_dtype`) latency and memory are those of
    :func:`rnlib.runtime.inference_model`: a bf16 copy on the CPU, autocast on CUDA."""
    flops = count_flops(model, size, batch)
    cost = Cost(name, count_parameters(model) / 1e6, flops / 1e9, flops / 2e9)
    run = inference_model(model, amp_dtype)
    if latency:
        cost.latency_ms = measure_latency(run, size, batch, repeats=repeats,
                                          channels_last=channels_last)
    if memory:
        cost.peak_mem_mib = peak_memory(run, size, batch, channels_last=channels_last)
    return cost


def format_table(costs: Sequence[Cost], reference: str | None = None) -> str:
    """A markdown table of costs; with ``reference``, latencies also as ratios to that row."""
    ref = next((c for c in costs if c.name == reference), None)
    header = ["model", "params (M)", "GFLOPs", "GMACs", "latency (ms)", "peak mem (MiB)"]
    header += [f"latency / {ref.name}"] if ref is not None else []
    rows = []
    for c in costs:
        row = [c.name, f"{c.params_m:.2f}", f"{c.gflops:.1f}", f"{c.gmacs:.1f}",
               _fmt(c.latency_ms, ".0f"), _fmt(c.peak_mem_mib, ".0f")]
        if ref is not None:
            ratio = (c.latency_ms / ref.latency_ms
                     if c.latency_ms and ref.latency_ms else None)
            row.append(f"{_fmt(ratio, '.2f')}x" if ratio else "-")
        rows.append(row)
    return markdown_table(header, rows)


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)
