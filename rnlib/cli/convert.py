"""``rnlib convert``: the authors' released weights as an rnlib checkpoint."""

from __future__ import annotations

import argparse
from typing import Any

from ..convert import ARCHITECTURES, convert_checkpoint


def add_convert_command(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``rnlib convert AUTHORS_FILE --out FILE [--arch NAME]`` on ``subparsers``
    (what ``ArgumentParser.add_subparsers`` returns)."""
    p = subparsers.add_parser(
        "convert", help="turn the authors' released weights into an rnlib checkpoint",
        description="Convert a state dict saved by the authors' PyTorch code (Light-Weight "
                    "RefineNet-50/101/152, RefineNet-101/152) into a checkpoint that rnlib "
                    "loads. rnlib downloads nothing: fetch the file yourself (where: python -c "
                    "'from rnlib.convert import RELEASES; print(*RELEASES, sep=chr(10))').")
    p.add_argument("authors_file", metavar="AUTHORS_FILE", help="the authors' .pth/.pth.tar")
    p.add_argument("--out", required=True, metavar="FILE", help="the rnlib checkpoint to write")
    p.add_argument("--arch", choices=list(ARCHITECTURES),
                   help="the authors' architecture (default: guessed from the keys)")
    p.set_defaults(run=_convert_command)
    return p


def _convert_command(args: argparse.Namespace) -> None:
    info = convert_checkpoint(args.authors_file, args.out, arch=args.arch)
    print(f"converted {info['architecture']}: {info['num_classes']} classes, "
          f"{info['tensors']} tensors -> {info['out']}")
