"""Where the time goes: torch.profiler tables by operator (issue 14).

For LW-RefineNet-50 and RefineNet-101 (inference at 512x512, batch 1, channels_last, plain
models as users build them) and for the course preset's training step (RefineNet and FCN-8s on
ResNet-18, its batch at 128x128), the operators that take the most self CPU time, their share and
their count, written as markdown with the machine and the command.

    .venv/bin/python benchmarks/profile_models.py        # -> benchmarks/profile.md
    .venv/bin/python benchmarks/profile_models.py --size 128 --rows 8 --out "$(mktemp)"
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

import rnlib
from rnlib.config import PRESETS
from rnlib.tables import command_line, made_by, markdown_table


def _table(prof, rows: int) -> str:
    events = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)
    total = sum(e.self_cpu_time_total for e in events)
    lines = [[e.key, f"{e.self_cpu_time_total / 1e3:.1f}",
              f"{100 * e.self_cpu_time_total / total:.0f}%", e.count] for e in events[:rows]]
    lines.append(["**all**", f"**{total / 1e3:.1f}**", "", ""])
    return markdown_table(["operator", "self CPU (ms)", "share", "calls"], lines)


def inference(name: str, backbone: str, size: int, rows: int) -> str:
    model = rnlib.build_model(name, num_classes=21, backbone=backbone).eval()
    model = model.to(memory_format=torch.channels_last)
    x = torch.randn(1, 3, size, size).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        model(x)  # warm-up
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            model(x)
    return f"### {name} ({backbone}), inference {size}x{size}, channels_last\n\n" + _table(
        prof, rows)


def training_step(name: str, rows: int) -> str:
    preset = PRESETS["cpu-quick"]
    options = dict(preset.model_options) if name.startswith("refinenet") else {}
    model = rnlib.build_model(name, num_classes=5, backbone=preset.backbone, **options).train()
    model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    x = torch.randn(preset.batch_size, 3, preset.crop, preset.crop).contiguous(
        memory_format=torch.channels_last)
    target = torch.randint(0, 5, (preset.batch_size, preset.crop, preset.crop))

    def step() -> None:
        loss = F.cross_entropy(model(x), target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    step()  # warm-up
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    return (f"### {name}, training step of the cpu-quick preset ({preset.backbone}, "
            f"{preset.model_options if options else 'no options'}, batch {preset.batch_size} at "
            f"{preset.crop}x{preset.crop})\n\n" + _table(prof, rows))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--rows", type=int, default=12)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("profile.md"))
    args = parser.parse_args()
    sections = [inference("refinenet-lw", "resnet50", args.size, args.rows),
                inference("refinenet", "resnet101", args.size, args.rows),
                training_step("refinenet", args.rows), training_step("fcn8s", args.rows)]
    command = command_line("python benchmarks/profile_models.py")
    text = (f"# Where the time goes\n\n{made_by(command)} One profiled pass after a warm-up; "
            f"self CPU time by operator, largest first.\n\n" + "\n\n".join(sections) + "\n")
    print(text)
    args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
