"""Where bfloat16 saves time in a training step, and where it does not (issue 22).

The training step that benchmarks/speed.py times (rnlib.bench.train_step: 256x256, batch 2,
channels_last, SGD with momentum,
the optimizer's state already made) for LW-RefineNet-50 and FCN-8s-50, whose steps stay over
0.55x fp32's time under bf16 autocast: torch.profiler's self CPU time in fp32 and in bf16, split
into convolutions (forward and backward) and everything else, then the operators that take the
most time in bf16. One profiled step per format after two warm-up steps.

Then the same step, unprofiled, as the batch and the image grow (:data:`STEPS`), fp32 and bf16
alternating round by round: whether the 0.55x goal is out of reach for these models, or only
for a step as small as speed.py's.

    .venv/bin/python benchmarks/profile_bf16.py        # -> benchmarks/profile_bf16.md
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

import rnlib
from rnlib import bench
from rnlib.tables import command_line, made_by, markdown_table

MODELS = {"LW-RefineNet-50": "refinenet-lw", "FCN-8s-50": "fcn8s"}
CONVOLUTION = ("aten::mkldnn_convolution", "aten::convolution_backward")
STEPS = [(256, 2), (384, 2), (512, 2), (256, 8)]  # (side, batch): speed.py's step first


def _profiled_step(model: torch.nn.Module, dtype: torch.dtype | None):
    step = bench.train_step(model, (256, 256), 2, channels_last=True, amp_dtype=dtype)
    step(), step()  # warm-up: kernels, and the optimizer's momentum
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    return prof.key_averages()


def section(name: str, rows: int) -> str:
    model = rnlib.build_model(MODELS[name], num_classes=21, backbone="resnet50").train()
    model = model.to(memory_format=torch.channels_last)
    events = {label: _profiled_step(model, dtype)
              for label, dtype in (("fp32", None), ("bf16", torch.bfloat16))}
    split = []
    for label, found in events.items():
        total = sum(e.self_cpu_time_total for e in found) / 1e3
        conv = sum(e.self_cpu_time_total for e in found if e.key in CONVOLUTION) / 1e3
        split.append([label, f"{conv:.0f}", f"{total - conv:.0f}", f"{total:.0f}"])
    split.append(["bf16 / fp32"] + [f"{float(b) / float(f):.2f}"
                                    for f, b in zip(split[0][1:], split[1][1:])])
    fp32 = {e.key: e.self_cpu_time_total / 1e3 for e in events["fp32"]}
    top = sorted(events["bf16"], key=lambda e: -e.self_cpu_time_total)[:rows]
    operators = [[e.key, f"{e.self_cpu_time_total / 1e3:.1f}", f"{fp32.get(e.key, 0.0):.1f}",
                  e.count] for e in top]
    return (f"### {name}\n\n"
            + markdown_table(["format", "convolutions (ms)", "everything else (ms)", "all (ms)"],
                             split)
            + "\n\n" + markdown_table(["operator", "bf16 (ms)", "fp32 (ms)", "calls in bf16"],
                                      operators))


def size_table(repeats: int) -> str:
    """The bf16 / fp32 time of the training step for each model and (side, batch) of
    :data:`STEPS`: medians of ``repeats`` alternating rounds."""
    rows = []
    for name, registry in MODELS.items():
        model = rnlib.build_model(registry, num_classes=21, backbone="resnet50")
        model = model.to(memory_format=torch.channels_last)
        for side, batch in STEPS:
            ms = bench.alternate_train_steps(model, (side, side), batch, repeats=repeats)
            fp32, bf16 = ms[None], ms[torch.bfloat16]
            rows.append([name, f"{side}x{side}", batch, f"{fp32:.0f}", f"{bf16:.0f}",
                         f"{bf16 / fp32:.2f}"])
    return ("### The step's size\n\n"
            f"Medians of {repeats} rounds, fp32 and bf16 alternating, after a warm-up step "
            "each.\n\n"
            + markdown_table(["model", "image", "batch", "fp32 (ms)", "bf16 (ms)",
                              "bf16 / fp32"], rows))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=5, help="rounds of the size table")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("profile_bf16.md"))
    args = parser.parse_args()
    if args.repeats < 1:  # before the profiles: the size table takes a median of the rounds
        parser.error(f"--repeats must be 1 or more, got {args.repeats}")
    command = command_line("python benchmarks/profile_bf16.py")
    text = (f"# Where bfloat16 saves time in a training step\n\n{made_by(command)} "
            f"Self CPU time of one profiled step (profiling "
            f"adds its own overhead; speed.py gives the unprofiled times).\n\n"
            + "\n\n".join([*(section(name, args.rows) for name in MODELS),
                               size_table(args.repeats)]) + "\n")
    print(text)
    args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
