"""Where ASPP's dilated convolutions run as stacked taps in bfloat16 (rnlib.models.atrous).

One 3x3 convolution of the DeepLab head (2048 -> 256 channels, batch 1, channels_last) at each
of ASPP's rates (1: undilated, for reference), on the map that a 512x512 and a 1024x1024 image
give at output stride 8: float32, oneDNN's bfloat16 kernel (nn.Conv2d), and the stacked taps
(``AtrousConv2d.taps``) in bfloat16, whichever this CPU's rule picks (``taps_are_faster``: where
it has AMX). Inference, the variants interleaved round by round, medians.

    .venv/bin/python benchmarks/atrous_speed.py    # -> benchmarks/atrous_speed.md
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from rnlib.models.atrous import AtrousConv2d, taps_are_faster
from rnlib.tables import command_line, made_by, markdown_table

HERE = Path(__file__).resolve().parent
RATES = (1, 12, 24, 36)
SIDES = (64, 128)  # 512 and 1024 pixels at output stride 8
VARIANTS = ("fp32", "bf16 nn.Conv2d", "bf16 stacked taps")


def _variants(rate: int) -> dict[str, tuple[Callable, torch.dtype]]:
    conv = nn.Conv2d(2048, 256, 3, padding=rate, dilation=rate).eval()
    atrous = AtrousConv2d(2048, 256, 3, padding=rate, dilation=rate).eval()
    atrous.load_state_dict(conv.state_dict())
    bf16 = [m.to(torch.bfloat16, memory_format=torch.channels_last)
            for m in (nn.Conv2d(2048, 256, 3, padding=rate, dilation=rate), atrous)]
    bf16[0].load_state_dict(conv.state_dict())
    return dict(zip(VARIANTS, [(conv.to(memory_format=torch.channels_last), torch.float32),
                               (bf16[0], torch.bfloat16), (bf16[1].taps, torch.bfloat16)]))


def measure(repeats: int) -> list[list[str]]:
    rows = []
    for side in SIDES:
        for rate in RATES:
            variants = _variants(rate)
            x = torch.randn(1, 2048, side, side).contiguous(memory_format=torch.channels_last)
            inputs = {dtype: x.to(dtype) for dtype in (torch.float32, torch.bfloat16)}
            times = {name: [] for name in variants}
            with torch.inference_mode():
                for run, dtype in variants.values():  # warm-up: kernels built once
                    run(inputs[dtype])
                for _ in range(repeats):
                    for name, (run, dtype) in variants.items():
                        started = time.perf_counter()
                        run(inputs[dtype])
                        times[name].append((time.perf_counter() - started) * 1e3)
            ms = {name: statistics.median(t) for name, t in times.items()}
            rows.append([f"{side}x{side}", str(rate)] + [f"{ms[v]:.0f}" for v in VARIANTS]
                        + [f"{ms[VARIANTS[1]] / ms[VARIANTS[0]]:.2f}",
                           f"{ms[VARIANTS[2]] / ms[VARIANTS[0]]:.2f}"])
            print(" | ".join(rows[-1]), file=sys.stderr, flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=str(HERE / "atrous_speed.md"))
    args = parser.parse_args()
    rows = measure(args.repeats)
    header = ["map", "rate", "fp32 (ms)", "bf16 nn.Conv2d (ms)", "bf16 stacked taps (ms)",
              "nn.Conv2d bf16 / fp32", "taps bf16 / fp32"]
    picks = "the stacked taps" if taps_are_faster() else "nn.Conv2d"
    text = (f"# ASPP's dilated convolution in bfloat16\n\n"
            f"{made_by(command_line('python benchmarks/atrous_speed.py'))}\n\n"
            f"One 3x3 convolution, 2048 -> 256 channels, batch 1, channels_last, random weights, "
            f"inference; {torch.get_num_threads()} threads; medians of {args.repeats}, the "
            f"variants interleaved. On this CPU AtrousConv2d runs {picks} in bfloat16 "
            f"(rnlib.models.atrous.taps_are_faster: where the CPU has AMX)."
            f"\n\n{markdown_table(header, rows)}\n")
    print(text)
    Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
