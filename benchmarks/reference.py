"""The reference comparison (issue 9): every contender trained for the same 1000 steps with
learning curves, three seeds and the same learning-rate grid, chosen on validation, reported
on test; the tables say how much each model's mIoU still moved at the end (its plateau).

RefineNet against FCN-32s, FCN-8s, FCN-4s (RefineNet's output stride, 1/4, without its blocks)
and the dilated network, and RefineNet taken apart (without chained pooling, without RCUs, 2-
and 1-cascade), all fine-tuning the course's pretrained ResNet-18 on Shapes with the "reference"
preset. Runs are budgeted in steps, so the numbers come back on any machine of the same kind;
only the seconds are this machine's.

    .venv/bin/python benchmarks/reference.py     # -> benchmarks/reference.{md,png},
                                                 #    rnlib/results/reference.json

36 runs, 4 per contender. The 32 recorded before FCN-4s joined took 7.3 hours of one core in
all (3.7 h as two one-thread processes on 2 cores, more than one working session). Every
finished run is kept in benchmarks/reference-runs (its settings, curves and test metrics, no
weights; committed) and reused, so the command continues on a fresh clone where it stopped, and
renders the tables without training once every run is kept; delete that folder to train every
run again. An interrupted run continues from its checkpoint in runs/reference. On 2 cores it is
fastest as two one-thread processes over halves of the contenders, then one process that reuses
every run and writes the tables:

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/reference.py --only "RefineNet (4-cascade)" \
        FCN-32s FCN-8s FCN-4s "Dilated OS8" &
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/reference.py --only "without CRP" \
        "without RCUs" 2-cascade 1-cascade
    .venv/bin/python benchmarks/reference.py
    .venv/bin/python benchmarks/reference.py --tables   # the tables again, from the JSON
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rnlib import viz
from rnlib.compare import ABLATIONS, BASELINES, compare, format_margins, format_rows, rows_as_dicts
from rnlib.config import PRESETS
from rnlib.results import REFERENCE, reference
from rnlib.tables import made_by

ROOT = Path(__file__).resolve().parents[1]
SEEDS = [0, 1, 2]
REFINENET = "RefineNet (4-cascade)"
METRICS = ["mIoU", "boundary F", "line", "dot"]  # the paper's claims: detail, thin structures
LR_GRID = [3e-4, 1e-3]  # AdamW, the same for every model; 3e-3 sent RefineNet to background
KEPT = ROOT / "benchmarks" / "reference-runs"  # every finished run's record and test metrics


def main() -> int:
    contenders = {**BASELINES, **ABLATIONS}
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="+", choices=list(contenders), metavar="NAME",
                        help="train only these contenders and write nothing")
    parser.add_argument("--tables", action="store_true",
                        help="only write the tables and the plot again from the recorded JSON")
    args = parser.parse_args()
    config = PRESETS["reference"]
    if args.tables:
        rows = reference()
    else:
        entries = ({k: v for k, v in contenders.items() if k in args.only} if args.only
                   else contenders)
        rows = compare(config, entries, ROOT / "runs" / "reference", seeds=SEEDS,
                       lr_grid=LR_GRID, resume=True, kept=KEPT)
        if args.only:
            return 0
        REFERENCE.write_text(json.dumps(rows_as_dicts(rows, REFERENCE), indent=1))
    runs = len(SEEDS) + len(LR_GRID) - 1  # the grid on the first seed, then the other seeds
    hours = sum(r.train_s for r in rows) * runs / 3600
    baselines = [r for r in rows if r.name in BASELINES]
    ablations = [r for r in rows if r.name in ABLATIONS]
    text = (f"# Reference comparison\n\n{made_by('python benchmarks/reference.py')} "
            f"Preset `reference`; "
            f"{runs * len(rows)} training runs, {hours:.1f} h of training in all (the seconds "
            f"below are this machine's, and depend on how it was shared; the accuracy does "
            f"not).\n\n"
            f"{format_rows(rows, config)}\n## Margins against RefineNet, seed by seed\n\n"
            f"Baselines:\n\n{format_margins(baselines, REFINENET, METRICS)}\n\n"
            f"Ablations:\n\n{format_margins(ablations, REFINENET, METRICS)}\n")
    print(text)
    (ROOT / "benchmarks" / "reference.md").write_text(text)
    viz.plot_curves(rows, "reference: validation mIoU, mean and range of 3 seeds").savefig(
        ROOT / "benchmarks" / "reference.png", dpi=110)
    return 0


if __name__ == "__main__":
    sys.exit(main())
