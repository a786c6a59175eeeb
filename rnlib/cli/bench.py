"""``rnlib bench``: parameters, FLOPs, latency and memory of models."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..config import AMP_MODES
from .options import pairs, write_text


def _bench(args: argparse.Namespace) -> None:
    import torch

    from .. import bench, build_model
    from ..runtime import amp_dtype, choose_device

    costs = []
    device = choose_device(args.device)
    amp = amp_dtype(args.amp, device)
    for name in args.models:
        model = build_model(name, num_classes=args.num_classes, backbone=args.backbone,
                            **pairs(args.model_option, "--model-option")).to(device)
        costs.append(bench.measure(name, model, args.size, batch=args.batch,
                                   latency=not args.no_latency, memory=not args.no_memory,
                                   channels_last=args.channels_last, repeats=args.repeats,
                                   amp_dtype=amp))
        print(f"measured {name}", file=sys.stderr)
    table = bench.format_table(costs, reference=args.reference)
    h, w = args.size
    title = (f"{args.backbone}, {args.num_classes} classes, input {h}x{w}, batch {args.batch}, "
             f"{device}, {'channels_last' if args.channels_last else 'NCHW'}, "
             f"{str(amp or torch.float32).removeprefix('torch.')}, "
             f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    text = f"{title}\n\n{table}\n"
    print(text)
    if args.out:
        write_text(Path(args.out), text)


def add_bench_command(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``rnlib bench``."""
    p = subparsers.add_parser(
        "bench", help="parameters, FLOPs/MACs, latency and peak memory of models")
    p.add_argument("--models", nargs="+", default=["refinenet", "refinenet-lw", "fcn8s",
                                                    "fcn4s", "dilated-os8"], metavar="NAME")
    p.add_argument("--backbone", default="resnet50")
    p.add_argument("--num-classes", type=int, default=21)
    p.add_argument("--model-option", action="append", metavar="KEY=VALUE")
    p.add_argument("--size", type=int, nargs=2, default=[512, 512], metavar=("H", "W"))
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--amp", nargs="?", const="on", default="off", choices=AMP_MODES,
                   help="mixed precision (rnlib.runtime.amp_dtype); --amp alone: fp16 on CUDA, "
                        "bf16 on a CPU that computes it natively, refused on others")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--no-latency", action="store_true", help="only parameters and FLOPs")
    p.add_argument("--no-memory", action="store_true")
    p.add_argument("--reference", help="model whose latency the others are divided by")
    p.add_argument("--out", help="also write the table to this markdown file")
    p.set_defaults(run=_bench)
    return p
