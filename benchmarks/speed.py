"""Speed of RefineNet and its baselines, side by side in one run (issue 5).

Inference at 512x512 (batch 1) in NCHW and channels_last, a training step at 256x256 (batch 2),
peak memory, achieved GFLOP/s and its share of the machine's convolution ceiling measured in the
same run. Writes a markdown table with the machine, versions and command.

    .venv/bin/python benchmarks/speed.py                    # CPU -> benchmarks/cpu_speed.md
    .venv/bin/python benchmarks/speed.py --device cuda      # GPU, fp32 and AMP -> gpu_speed.md
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import torch

import rnlib
from rnlib import bench
from rnlib.deploy import fuse_batchnorm

MODELS = [  # (row name, registry name, backbone)
    ("RefineNet-101", "refinenet", "resnet101"),
    ("RefineNet-50", "refinenet", "resnet50"),
    ("LW-RefineNet-50", "refinenet-lw", "resnet50"),
    ("FCN-8s-50", "fcn8s", "resnet50"),
    ("Dilated-OS8-50", "dilated-os8", "resnet50"),
    ("DeepLab-OS8-50", "deeplab-os8", "resnet50"),
    ("tv fcn_resnet50", "tv-fcn", "resnet50"),
    ("tv deeplabv3_resnet50", "tv-deeplabv3", "resnet50"),
]
REFERENCE = "tv fcn_resnet50"


def cpu_rows(args) -> tuple[list[str], float]:
    ceiling = bench.conv_ceiling("cpu", channels_last=True)
    rows, results = [], {}
    for name, model_name, backbone in MODELS:
        started = time.perf_counter()
        model = rnlib.build_model(model_name, num_classes=21, backbone=backbone).eval()
        flops = bench.count_flops(model, (512, 512))
        nchw = bench.measure_latency(model, (512, 512), repeats=args.repeats)
        fused = fuse_batchnorm(model)
        last = bench.measure_latency(fused, (512, 512), repeats=args.repeats, channels_last=True)
        memory = bench.peak_memory(fused, (512, 512), channels_last=True)
        model = rnlib.build_model(model_name, num_classes=21, backbone=backbone)
        step = bench.measure_train_step(model, (256, 256), 2, repeats=args.repeats,
                                        channels_last=True)
        results[name] = dict(flops=flops, nchw=nchw, last=last, memory=memory, step=step,
                             params=bench.count_parameters(model))
        print(f"{name}: {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
    ceiling = max(ceiling, bench.conv_ceiling("cpu", channels_last=True))  # again, after warm-up
    ref = results[REFERENCE]
    rows.append("| model | params (M) | GMACs@512 | NCHW (ms) | channels_last + fused BN (ms) | "
                f"vs {REFERENCE} | GFLOP/s | share of ceiling | peak mem (MiB) | train step "
                "256x256 b2 (ms) |")
    rows.append("|---|---|---|---|---|---|---|---|---|---|")
    for name, r in results.items():
        rate = r["flops"] / (r["last"] / 1e3) / 1e9
        rows.append(f"| {name} | {r['params'] / 1e6:.2f} | {r['flops'] / 2e9:.1f} | "
                    f"{r['nchw']:.0f} | {r['last']:.0f} | {r['last'] / ref['last']:.2f}x | "
                    f"{rate:.0f} | {100 * rate / ceiling:.0f}% | {r['memory']:.0f} | "
                    f"{r['step']:.0f} |")
    return rows, ceiling


def gpu_rows(args) -> tuple[list[str], float]:
    torch.backends.cudnn.benchmark = True
    amp = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    ceiling = bench.conv_ceiling("cuda", dtype=amp)
    rows = ["| model | infer fp32 (img/s) | infer AMP (img/s) | train fp32 (img/s) | "
            "train AMP (img/s) | train AMP / fp32 |", "|---|---|---|---|---|---|"]
    for name, model_name, backbone in MODELS:
        model = rnlib.build_model(model_name, num_classes=21, backbone=backbone).cuda()
        batch = args.gpu_batch
        infer = {}
        for label, dtype in (("fp32", None), ("amp", amp)):
            with torch.autocast("cuda", dtype=dtype or torch.float32, enabled=dtype is not None):
                infer[label] = batch * 1e3 / bench.measure_latency(
                    model, (512, 512), batch, repeats=args.repeats, channels_last=True)
        train = {label: batch * 1e3 / bench.measure_train_step(
            model, (512, 512), batch, repeats=args.repeats, channels_last=True, amp_dtype=dtype)
            for label, dtype in (("fp32", None), ("amp", amp))}
        rows.append(f"| {name} | {infer['fp32']:.1f} | {infer['amp']:.1f} | {train['fp32']:.1f} "
                    f"| {train['amp']:.1f} | {train['amp'] / train['fp32']:.2f}x |")
        print(name, file=sys.stderr, flush=True)
    return rows, ceiling


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--gpu-batch", type=int, default=8)
    parser.add_argument("--out", help="default: benchmarks/{cpu,gpu}_speed.md")
    args = parser.parse_args()
    rows, ceiling = (gpu_rows if args.device == "cuda" else cpu_rows)(args)
    device = torch.cuda.get_device_name() if args.device == "cuda" else platform.processor() or \
        platform.machine()
    text = (f"# Speed on {args.device.upper()}\n\nMachine: {device}, {torch.get_num_threads()} "
            f"threads; torch {torch.__version__}; command: `python benchmarks/speed.py "
            f"{' '.join(sys.argv[1:])}`; medians of {args.repeats} runs; 21 classes, random "
            f"weights.\nConvolution ceiling measured in the same run (3x3 conv 256->256, 56x56, "
            f"batch 8, channels_last): {ceiling:.0f} GFLOP/s.\n\n" + "\n".join(rows) + "\n")
    print(text)
    out = Path(args.out or Path(__file__).parent / f"{args.device}_speed.md")
    out.write_text(text)


if __name__ == "__main__":
    main()
