"""``rnlib data`` and ``rnlib models``: the datasets and the model registry."""

from __future__ import annotations

import argparse
from typing import Any

from ..data.sources import GENERATED, SHAPES_COUNT


def _data(args: argparse.Namespace) -> None:
    from ..data.sources import load_source, shapes_count

    options: dict = {"root": args.data_dir} if args.data_dir else {}
    if args.name in GENERATED:
        options.update(size=args.size, seed=args.seed)
    elif args.name in ("voc", "pets"):
        options["download"] = args.download
    for split in args.splits:
        if args.name in GENERATED:  # the very splits that training with --count reads
            options["count"] = shapes_count(split, args.count)
        source = load_source(args.name, split, **options)
        classes = f"; classes: {', '.join(source.classes)}" if source.classes else ""
        print(f"{source.name}: {len(source)} samples{classes}")


def _models(args: argparse.Namespace) -> None:
    from ..models import describe_models, model_options

    for name, doc in describe_models().items():
        print(f"{name:20s} {doc}")
        if args.options and model_options(name):
            print(" " * 21 + ", ".join(f"{k}={v!r}" for k, v in model_options(name).items()))


def add_models_command(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``rnlib models``."""
    p = subparsers.add_parser("models", help="list the registered models")
    p.add_argument("--options", action="store_true", help="also each model's options")
    p.set_defaults(run=_models)
    return p


def add_data_command(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``rnlib data``."""
    p = subparsers.add_parser("data", help="prepare (and with --download fetch) a dataset")
    p.add_argument("name", help="shapes, probe-detail (-context, -scale), voc, pets, "
                                "hf:NAME_OR_PATH or a folder")
    p.add_argument("--splits", nargs="+", default=["train", "val"])
    p.add_argument("--download", action="store_true", help="voc and pets: fetch if missing")
    p.add_argument("--count", type=int, default=SHAPES_COUNT,
                   help="shapes, probe-*: training images (val and test: a tenth, at least 64, as "
                        "training reads them)")
    p.add_argument("--size", type=int, default=128, help="shapes, probe-*: image side")
    p.add_argument("--seed", type=int, default=0, help="shapes, probe-*: the dataset's seed")
    p.add_argument("--data-dir", help="default: $RNLIB_DATA_DIR, else the checkout's data/")
    p.set_defaults(run=_data)
    return p
