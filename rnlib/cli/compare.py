"""``rnlib compare``: RefineNet against its baselines, its ablations or its light-weight variant,
as tables and plots."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..compare import GROUPS
from ..folders import check_writable
from .options import add_run_options, run_config, write_text


def _compare(args: argparse.Namespace) -> None:
    import json

    from .. import viz
    from ..compare import compare, format_rows, rows_as_dicts
    from ..tables import command_line, made_by

    config = run_config(args)
    entries = {name: entry for group in args.contenders for name, entry in GROUPS[group].items()}
    name = args.name or {("headline",): "comparison", ("ablations",): "ablation"}.get(
        tuple(args.contenders), "comparison-" + "-".join(args.contenders))
    out = Path(args.out)
    for folder, option in ((out, "--out"), (args.keep, "--keep")):
        if folder:
            check_writable(folder, "results", f"choose another {option}")
    rows = compare(config, entries, Path(args.runs) / name, seeds=args.seeds,
                   lr_grid=args.lr_grid or (), split=args.split, resume=args.resume,
                   kept=args.keep, processes=args.processes)
    command = command_line("rnlib") if sys.argv[1:2] == ["compare"] else "rnlib compare"
    text = f"# {name} ({args.preset})\n\n{made_by(command)}\n\n{format_rows(rows, config)}"
    print(text)
    write_text(out / f"{name}.md", text)
    record = out / f"{name}.json"
    write_text(record, json.dumps(rows_as_dicts(rows, record), indent=1))
    viz.plot_comparison(rows, f"{name}: {args.preset}").savefig(out / f"{name}.png", dpi=110)
    if any(len(c["step"]) > 1 for r in rows for c in r.curves):  # --eval-every-steps: curves
        viz.plot_curves(rows, f"{name}: validation mIoU").savefig(out / f"{name}-curves.png",
                                                                 dpi=110)


def add_compare_command(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``rnlib compare``."""
    p = subparsers.add_parser(
        "compare", help="RefineNet vs FCN-8s, FCN-4s, dilated OS8 (FCN-32s, ablations...)")
    add_run_options(p, model=False)
    p.add_argument("--contenders", choices=list(GROUPS), nargs="+", default=["headline"],
                   help="one or more of: RefineNet against FCN-8s, FCN-4s and dilated OS8 (the "
                        "default: the course's verdict), the same and FCN-32s, RefineNet taken "
                        "apart (no CRP, no RCUs, 1-2 cascades), RefineNet against Light-Weight "
                        "RefineNet, or all; e.g. --contenders baselines light-weight")
    p.add_argument("--seeds", type=int, nargs="+", help="train each model with each seed; "
                                                        "report mean and spread")
    p.add_argument("--lr-grid", type=float, nargs="+", metavar="LR",
                   help="the same learning rates for every model, chosen on validation")
    p.add_argument("--split", help="where results are measured (default: the test split)")
    p.add_argument("--out", default="benchmarks", help="where the table and plot go")
    p.add_argument("--name", help="file name of the results (default: comparison)")
    p.add_argument("--runs", default="runs", help="where the checkpoints go")
    p.add_argument("--processes", type=int, metavar="N",
                   help="train N runs side by side (default: one per core when the config "
                        "computes on one thread, as cpu-quick does; else one after another)")
    p.add_argument("--resume", action="store_true",
                   help="continue interrupted runs of the same settings, reuse finished ones")
    p.add_argument("--keep", metavar="DIR",
                   help="also keep each finished run's record and metrics here (kilobytes, no "
                        "weights): with --resume they stand in for runs whose checkpoints are "
                        "gone")
    p.set_defaults(run=_compare)
    return p
