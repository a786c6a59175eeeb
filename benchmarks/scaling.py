"""How latency and peak memory grow with the input's side, for RefineNet-101, Light-Weight
RefineNet-50, dilated OS8 on ResNet-101 and FCN-8s on ResNet-101 (issue 22).

The paper's argument against dilation (Lin et al., §1 and §2): keeping the last stages at 1/8
resolution with dilated convolutions costs compute and memory that grow with the image, where
RefineNet computes the deep stages at 1/32 and refines upwards. Here it is measured on the real
models: inference, batch 1, eval mode, fp32, channels_last, random weights, at sides 256 to 1024,
with the exponent ``k`` of a least-squares fit ``cost = c * side**k`` in log-log (2 is linear in
the number of pixels).

- Latency: the median of ``--repeats`` single passes (fewer at the largest sides, see
  :data:`FEWER_AT`), all models and sides interleaved round by round after a warm-up pass each.
- Peak memory: the largest resident set size (the kernel's VmHWM) during one pass beyond the
  resident size just before it, each in a fresh process after a warm-up pass at the same side
  (the peak is reset in between through ``/proc/self/clear_refs``), with glibc told to give
  every buffer of 128 KiB or more pages of its own. Unlike the profiler's count of PyTorch's
  own allocations, this includes oneDNN's scratch buffers and weight copies.

    .venv/bin/python benchmarks/scaling.py    # -> benchmarks/scaling.md, .json and .png
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

import rnlib
from rnlib import bench
from rnlib.tables import command_line

MODELS = {  # row name: (registry name, backbone)
    "RefineNet-101": ("refinenet", "resnet101"),
    "LW-RefineNet-50": ("refinenet-lw", "resnet50"),
    "Dilated-OS8-101": ("dilated-os8", "resnet101"),
    "FCN-8s-101": ("fcn8s", "resnet101"),
}
SIDES = (256, 384, 512, 768, 1024)
FEWER_AT = 768  # from this side up, latency is the median of fewer passes (the slowest ones)
HERE = Path(__file__).resolve().parent


def _build(name: str, backbone: str | None) -> torch.nn.Module:
    model_name, default = MODELS[name]
    return rnlib.build_model(model_name, num_classes=21, backbone=backbone or default).eval()


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _kib(field: str) -> int:
    status = Path("/proc/self/status").read_text()
    return int(re.search(rf"{field}:\s+(\d+) kB", status).group(1))


def _memory_worker(name: str, side: int, backbone: str | None) -> None:
    """In a fresh process: MiB of resident memory one pass needs beyond what is resident
    before it (printed on stdout)."""
    model = _build(name, backbone).to(memory_format=torch.channels_last)
    x = torch.randn(1, 3, side, side).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        model(x)  # warm-up: oneDNN's kernels and weight layouts, made once
        Path("/proc/self/clear_refs").write_text("5")  # reset the peak to the current size
        before = _kib("VmRSS")
        model(x)
        print((_kib("VmHWM") - before) / 1024)


def peak_memory(name: str, side: int, backbone: str | None) -> float:
    """Peak memory of one pass in MiB, measured in a fresh process (see the module's doc)."""
    command = [sys.executable, __file__, "--memory-of", name, str(side)]
    # every buffer of 128 KiB or more gets pages of its own and returns them when freed, so
    # that the measured pass cannot reuse the warm-up's freed memory unseen (glibc's default
    # threshold rises as large buffers are freed, and freed heap memory stays resident)
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": str(128 * 1024)}
    done = subprocess.run(command + (["--backbone", backbone] if backbone else []),
                          capture_output=True, text=True, check=False, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"measuring the memory of {name} at {side}: {done.stderr[-2000:]}")
    return float(done.stdout.split()[-1])


def exponent(sides: list[int], values: list[float]) -> float:
    """The slope of the least-squares line through (log side, log value); NaN if a value is
    not positive."""
    if min(values) <= 0:
        return math.nan
    xs, ys = [math.log(s) for s in sides], [math.log(v) for v in values]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    return (sum((x - mx) * (y - my) for x, y in zip(xs, ys))
            / sum((x - mx) ** 2 for x in xs))


def measure(names: list[str], sides: list[int], repeats: int, backbone: str | None
            ) -> dict[str, dict[str, list[float]]]:
    """Latency (ms) and peak memory (MiB) per model and side."""
    models = {name: _build(name, backbone).to(memory_format=torch.channels_last)
              for name in names}
    cells = [(name, side) for name in names for side in sides]
    times: dict[tuple[str, int], list[float]] = {cell: [] for cell in cells}
    for round_ in range(repeats):  # interleaved: a shared machine's drift hits all alike
        for name, side in cells:
            if side < FEWER_AT or round_ < max(1, repeats // 2):
                times[name, side].append(bench.measure_latency(
                    models[name], (side, side), repeats=1, warmup=1 if round_ == 0 else 0,
                    channels_last=True))
        _log(f"latency: round {round_ + 1} of {repeats}")
    del models
    results = {name: {"latency": [], "memory": []} for name in names}
    for name, side in cells:
        results[name]["latency"].append(statistics.median(times[name, side]))
        results[name]["memory"].append(peak_memory(name, side, backbone))
        _log(f"memory: {name} at {side}")
    return results


def tables(results: dict[str, dict[str, list[float]]], sides: list[int]) -> str:
    head = " | ".join(str(s) for s in sides)
    text = []
    for key, title, unit in (("latency", "Latency", "ms"), ("memory", "Peak memory", "MiB")):
        text += [f"### {title} ({unit}) by input side", "",
                 f"| model | {head} | exponent k | {sides[-1]} / {sides[0]} |",
                 "|---" * (len(sides) + 3) + "|"]
        for name, r in results.items():
            values = r[key]
            text.append(f"| {name} | " + " | ".join(f"{v:.0f}" for v in values)
                        + f" | {exponent(sides, values):.2f} | {values[-1] / values[0]:.1f}x |")
        text.append("")
    return "\n".join(text)


def record(results: dict[str, dict[str, list[float]]], sides: list[int], made_by: str) -> dict:
    """The measurements as scaling.json holds them: per model, latency (ms) and peak memory
    (MiB) side by side with ``sides``, and each one's fitted exponent."""
    return {"made_by": made_by, "sides": sides, "models": {
        name: {"latency_ms": r["latency"], "memory_mib": r["memory"],
               "latency_exponent": exponent(sides, r["latency"]),
               "memory_exponent": exponent(sides, r["memory"])}
        for name, r in results.items()}}


def plot(results: dict[str, dict[str, list[float]]], sides: list[int], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import LogLocator, ScalarFormatter

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, (key, label) in zip(axes, (("latency", "latency (ms)"),
                                       ("memory", "peak memory (MiB)"))):
        for name, r in results.items():
            ax.plot(sides, r[key], "o-", label=f"{name} (k = {exponent(sides, r[key]):.2f})")
        ax.set(xscale="log", yscale="log", xlabel="input side (pixels)", ylabel=label,
               title=f"{label.split(' (')[0]}, batch 1, fp32")
        ax.set_xticks(sides, [str(s) for s in sides])
        ax.yaxis.set_major_locator(LogLocator(subs=(1, 2, 5)))  # 10, 20, 50, 100 ...
        ax.yaxis.set_major_formatter(ScalarFormatter())
        ax.minorticks_off()
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("Cost against the input's side, log-log (k: the fitted exponent)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS),
                        metavar="MODEL")
    parser.add_argument("--sides", type=int, nargs="+", default=list(SIDES))
    parser.add_argument("--repeats", type=int, default=4,
                        help=f"latency passes per side (half as many from {FEWER_AT} up)")
    parser.add_argument("--backbone", help="every model on this backbone (default: the "
                                           "names' own; tests use resnet18)")
    parser.add_argument("--out", default=str(HERE / "scaling.md"),
                        help="the table; the numbers (.json) and the plot (.png) go next to it")
    parser.add_argument("--memory-of", nargs=2, metavar=("MODEL", "SIDE"),
                        help=argparse.SUPPRESS)  # the worker of one memory measurement
    args = parser.parse_args()
    if args.memory_of:
        _memory_worker(args.memory_of[0], int(args.memory_of[1]), args.backbone)
        return
    if len(args.sides) < 2:
        parser.error("--sides: give at least two sides to fit an exponent")
    started, load = time.perf_counter(), os.getloadavg()[0]
    results = measure(args.models, args.sides, args.repeats, args.backbone)
    out = Path(args.out)
    plot(results, args.sides, out.with_suffix(".png"))
    made_by = (f"Made by `{command_line('python benchmarks/scaling.py')}` on "
               f"{platform.machine()}, {torch.get_num_threads()} threads, torch "
               f"{torch.__version__}, in {time.perf_counter() - started:.0f} s; load average "
               f"(1 min, shared machine) {load:.1f} at the start, {os.getloadavg()[0]:.1f} at "
               f"the end.")
    out.with_suffix(".json").write_text(json.dumps(record(results, args.sides, made_by),
                                                   indent=1))
    text = (f"# Cost against the input's side\n\n{made_by}\n"
            f"Random weights, 21 classes; inference, batch 1, eval mode, fp32, channels_last. "
            f"Latency: median of {args.repeats} passes (of {max(1, args.repeats // 2)} from "
            f"{FEWER_AT} up), all models and sides interleaved round by round. Peak memory: the "
            f"largest resident set size during one pass beyond the resident size just before "
            f"it, in a fresh process after a warm-up pass (Linux VmHWM, reset through "
            f"/proc/self/clear_refs; MALLOC_MMAP_THRESHOLD_=131072, so that buffers of 128 KiB "
            f"and more are returned when freed); it includes oneDNN's buffers. Exponent k: "
            f"the slope of a least-squares line in log-log (cost ~ side^k; 2 is proportional "
            f"to the pixels). "
            f"Plot: [{out.with_suffix('.png').name}]({out.with_suffix('.png').name}).\n\n"
            + tables(results, args.sides))
    print(text)
    out.write_text(text)


if __name__ == "__main__":
    main()
