"""Where bfloat16 saves time in a training step, and where it does not (issue 22).

The training step that benchmarks/speed.py times (rnlib.bench.train_step: 256x256, batch 2,
channels_last, SGD with momentum,
the optimizer's state already made) for LW-RefineNet-50 and FCN-8s-50, whose steps stay over
0.55x fp32's time under bf16 autocast: torch.profiler's self CPU time in fp32 and in bf16, split
into convolutions (forward and backward) and everything else, then the operators that take the
most time in bf16. One profiled step per format after two warm-up steps.

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
from rnlib.tables import made_by, markdown_table

MODELS = {"LW-RefineNet-50": "refinenet-lw", "FCN-8s-50": "fcn8s"}
CONVOLUTION = ("aten::mkldnn_convolution", "aten::convolution_backward")


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=12)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("profile_bf16.md"))
    args = parser.parse_args()
    command = " ".join(["python benchmarks/profile_bf16.py", *sys.argv[1:]])
    text = (f"# Where bfloat16 saves time in a training step\n\n{made_by(command)} "
            f"{torch.get_num_threads()} threads. Self CPU time of one profiled step (profiling "
            f"adds its own overhead; speed.py gives the unprofiled times).\n\n"
            + "\n\n".join(section(name, args.rows) for name in MODELS) + "\n")
    print(text)
    args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
