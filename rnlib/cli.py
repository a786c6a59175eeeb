"""The command line: ``rnlib train | eval | compare | bench | data | models`` (also
``python -m rnlib``). Each subcommand mirrors a module of the library and has ``--help``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main"]


def _bench(args: argparse.Namespace) -> None:
    import torch

    from . import bench, build_model

    costs = []
    for name in args.models:
        device = torch.device(args.device)
        model = build_model(name, num_classes=args.num_classes, backbone=args.backbone).to(device)
        costs.append(bench.measure(name, model, args.size, batch=args.batch,
                                   latency=not args.no_latency, memory=not args.no_memory,
                                   channels_last=args.channels_last, repeats=args.repeats))
        print(f"measured {name}", file=sys.stderr)
    table = bench.format_table(costs, reference=args.reference)
    h, w = args.size
    title = (f"{args.backbone}, {args.num_classes} classes, input {h}x{w}, batch {args.batch}, "
             f"{args.device}, {'channels_last' if args.channels_last else 'NCHW'}, "
             f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    text = f"{title}\n\n{table}\n"
    print(text)
    if args.out:
        _write(Path(args.out), text)


def _models(args: argparse.Namespace) -> None:
    from .models import describe_models

    for name, doc in describe_models().items():
        print(f"{name:20s} {doc}")


def _write(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    except OSError as err:
        raise SystemExit(f"rnlib: cannot write {path}: {err.strerror}; "
                         "choose another --out") from err
    print(f"wrote {path}", file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rnlib",
        description="RefineNet and its baselines: train, evaluate, compare, benchmark.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("models", help="list the registered models")
    p.set_defaults(run=_models)

    p = sub.add_parser("bench", help="parameters, FLOPs/MACs, latency and peak memory of models")
    p.add_argument("--models", nargs="+", default=["refinenet", "refinenet-lw", "fcn8s",
                                                    "dilated-os8"], metavar="NAME")
    p.add_argument("--backbone", default="resnet50")
    p.add_argument("--num-classes", type=int, default=21)
    p.add_argument("--size", type=int, nargs=2, default=[512, 512], metavar=("H", "W"))
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--no-latency", action="store_true", help="only parameters and FLOPs")
    p.add_argument("--no-memory", action="store_true")
    p.add_argument("--reference", help="model whose latency the others are divided by")
    p.add_argument("--out", help="also write the table to this markdown file")
    p.set_defaults(run=_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except (ValueError, FileNotFoundError) as err:
        raise SystemExit(f"rnlib {args.command}: {err}") from err
