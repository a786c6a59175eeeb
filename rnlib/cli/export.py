"""``rnlib export``: a checkpoint written as a .pt2 or ONNX file, checked against eager."""

from __future__ import annotations

import argparse
from typing import Any

from .. import export


def _run_export_command(args: argparse.Namespace) -> None:
    report = export.export_checkpoint(args.checkpoint, args.out, fmt=args.format,
                                      fold_bn=args.fold_bn,
                                      sizes=args.size or export.VERIFY_SIZES,
                                      min_side=args.min_side, tolerance=args.tolerance,
                                      amp=args.amp or "off")
    print(report.summary())
    if not report.ok:
        raise export.ExportError(
            f"{report.exported.path} differs from the eager model by more than "
            f"{report.tolerance:g} of the logits' scale (see above); do not deploy it as is: "
            f"try the other --format, or export without --fold-bn")


def add_export_command(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``rnlib export CHECKPOINT --format onnx|pt2 [--fold-bn] [--out PATH]
    [--size H W]...`` on an argparse sub-parsers object; returns its parser."""
    p = subparsers.add_parser(
        "export", help="write a checkpoint as a .pt2 (torch.export) or .onnx file, dynamic "
                       "in batch, height and width, checked against the eager model",
        description="Export a checkpoint's model and check the file against the eager model "
                    "on random images of two sizes, printing the largest difference.")
    p.add_argument("checkpoint", help="a last.pt written by rnlib train")
    p.add_argument("--format", required=True, choices=export.FORMATS,
                   help="pt2: torch.export program (torch.export.load); onnx: ONNX opset "
                        f"{export.ONNX_OPSET} (needs onnx, onnxscript, onnxruntime)")
    p.add_argument("--fold-bn", action="store_true",
                   help="fold batch norm into the convolutions before exporting")
    p.add_argument("--out", help="the file to write (default: next to the checkpoint, "
                                 "with suffix .pt2 or .onnx)")
    p.add_argument("--size", type=int, nargs=2, action="append", metavar=("H", "W"),
                   help=f"a verification size, repeatable (default: "
                        f"{' and '.join(f'{h} {w}' for h, w in export.VERIFY_SIZES)})")
    p.add_argument("--min-side", type=int, metavar="N",
                   help=f"smallest height and width the file accepts (default: {export.MIN_SIDE}, "
                        f"raised when the model needs more)")
    p.add_argument("--amp", nargs="?", const="on", choices=("on", "bf16", "off"),
                   help="--amp alone: a .pt2 program that computes in bfloat16, on a CPU that "
                        "computes it natively")
    p.add_argument("--tolerance", type=float, default=export.TOLERANCE,
                   help="largest accepted difference, relative to the largest eager logit "
                        "(default: %(default)g)")
    p.set_defaults(run=_run_export_command)
    return p

