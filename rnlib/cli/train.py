"""``rnlib train`` and ``rnlib eval``: a run from its config, a checkpoint's scores."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .options import add_run_options, run_config


def _train(args: argparse.Namespace) -> None:
    from ..config import dump_config
    from ..runs import train

    config = run_config(args)
    if args.print_config:
        print(dump_config(config), end="")
        return
    trainer = train(config, args.out, resume=args.resume, overwrite=args.overwrite)
    if trainer.runtime.is_main:
        h = trainer.history
        print(f"trained {config.model} for {trainer.step} steps; validation mIoU "
              f"{100 * h.val_miou[-1]:.1f}, boundary F {100 * h.val_boundary_f[-1]:.1f}; "
              f"checkpoint {Path(args.out) / 'last.pt'}")


def _eval(args: argparse.Namespace) -> None:
    from ..checkpoint import checkpoint_config, load_checkpoint
    from ..config import TrainConfig
    from ..runs import evaluate_checkpoint

    state = load_checkpoint(args.checkpoint)
    base = TrainConfig.from_dict(checkpoint_config(state, args.checkpoint))
    config = run_config(args, base=base)
    result, classes = evaluate_checkpoint(args.checkpoint, config=config, split=args.split,
                                          scales=args.scales, flip=args.flip)
    print(result.summary())
    print(_per_class(classes, result.iou))


def _per_class(classes: Sequence[str], iou: Sequence[float]) -> str:
    width = max(len(c) for c in classes)
    return "IoU per class:\n" + "\n".join(f"  {c:{width}s} {100 * v:5.1f}"
                                          for c, v in zip(classes, iou))


def add_train_command(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``rnlib train``."""
    p = subparsers.add_parser("train", help="train a model (presets: cpu-quick, gpu-quick, gpu)")
    add_run_options(p, model=True)
    p.add_argument("--out", default="runs/train", help="folder for last.pt and history.json")
    start = p.add_mutually_exclusive_group()
    start.add_argument("--resume", action="store_true",
                       help="continue from OUT/last.pt (it must exist)")
    start.add_argument("--overwrite", action="store_true",
                       help="train anew into an OUT that holds a run, keeping its checkpoint "
                            "as last.pt.bak (without --resume or --overwrite it is refused)")
    p.add_argument("--print-config", action="store_true",
                   help="print the effective configuration as YAML and stop")
    p.set_defaults(run=_train)
    return p


def add_eval_command(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``rnlib eval``."""
    p = subparsers.add_parser(
        "eval", help="evaluate a checkpoint: mIoU, pixel accuracy, boundary F")
    p.add_argument("checkpoint", help="a last.pt written by rnlib train (or rnlib convert)")
    add_run_options(p, model=False)
    p.add_argument("--split", help="default: the run's validation split")
    p.add_argument("--scales", type=float, nargs="+", default=[1.0],
                   help="multi-scale inference, e.g. 0.75 1 1.25")
    p.add_argument("--flip", action="store_true", help="also average the flipped image")
    p.set_defaults(run=_eval)
    return p
