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

36 runs, 4 per contender, 7.7 hours of one core in all (about 4 h on 2 cores, more than one
working session). Every finished run is kept in benchmarks/reference-runs (its settings, curves
and test metrics, no weights; committed) and reused, so the command continues on a fresh clone
where it stopped, and renders the tables without training once every run is kept; delete that
folder to train every run again. An interrupted run continues from its checkpoint in
runs/reference. Every preset here computes on one thread per run, so the runs train side by side,
one process per core (rnlib.side_by_side); ``--only`` trains some contenders and writes nothing:

    .venv/bin/python benchmarks/reference.py --only FCN-4s
    .venv/bin/python benchmarks/reference.py --tables   # the tables again, from the JSON

``--regime quick`` records the course's own regime the same way: the ``cpu-quick`` preset that
notebooks 07-09 and ``rnlib compare`` train (400 steps on Shapes drawn at 96x96, bfloat16 where
the processor computes it), every contender and Light-Weight RefineNet with seeds 0, 1 and 2 at
the one learning rate, so that a student's run can be read against the spread of its regime (its
seed 0 is the student's run, to the digit, on a processor like ours). 30 runs, 26 minutes on 2
cores of an AMD EPYC; it writes benchmarks/quick.md and rnlib/results/quick.json:

    .venv/bin/python benchmarks/reference.py --regime quick

``--regime quick_fp32`` is the same regime in float32, with the same three seeds
(benchmarks/quick_fp32.md and .json): whether bfloat16 changes the course's verdicts.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from rnlib import viz
from rnlib.compare import (
    ABLATIONS,
    BASELINES,
    GROUPS,
    LIGHT_WEIGHT,
    compare,
    format_margins,
    format_rows,
    rows_as_dicts,
)
from rnlib.config import PRESETS
from rnlib.results import QUICK, REFERENCE, load_rows
from rnlib.tables import made_by

ROOT = Path(__file__).resolve().parents[1]
REFINENET = "RefineNet (4-cascade)"
METRICS = ["mIoU", "boundary F", "line", "dot"]  # the paper's claims: detail, thin structures


@dataclass(frozen=True)
class Regime:
    """What one recording trains, and where it keeps its runs and writes its results."""
    preset: str
    lr_grid: tuple[float, ...]  # the same for every model, chosen on validation; () the preset's
    record: Path  # the JSON that travels with the package (rnlib.results)
    runs: Path  # the checkpoints; an interrupted run continues from its own
    kept: Path | None  # every finished run's record and test metrics (committed), or None
    seeds: tuple[int, ...] = (0, 1, 2)
    amp: str | None = None  # the preset's own unless given
    light_weight: bool = True  # Light-Weight RefineNet among the contenders (not in the reference)


REGIMES = {
    # AdamW; 3e-3 sent RefineNet to background
    "reference": Regime("reference", (3e-4, 1e-3), REFERENCE, ROOT / "runs" / "reference",
                        ROOT / "benchmarks" / "reference-runs", light_weight=False),
    "quick": Regime("cpu-quick", (), QUICK, ROOT / "runs" / "quick-seeds", None),
    # the course's regime in float32, seeds 0-2: does bfloat16 change the verdict? (issue 22)
    "quick_fp32": Regime("cpu-quick", (), ROOT / "benchmarks" / "quick_fp32.json",
                         ROOT / "runs" / "quick-fp32", None, amp="off"),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--regime", choices=list(REGIMES), default="reference")
    parser.add_argument("--only", nargs="+", choices=list(GROUPS["all"]), metavar="NAME",
                        help="train only these contenders and write nothing")
    parser.add_argument("--tables", action="store_true",
                        help="only write the tables and the plot again from the recorded JSON")
    args = parser.parse_args()
    regime = REGIMES[args.regime]
    contenders = GROUPS["all"] if regime.light_weight else {**BASELINES, **ABLATIONS}
    config = replace(PRESETS[regime.preset], amp=regime.amp or PRESETS[regime.preset].amp)
    if args.tables:
        rows = load_rows(regime.record)
    else:
        entries = ({k: v for k, v in contenders.items() if k in args.only} if args.only
                   else contenders)
        rows = compare(config, entries, regime.runs, seeds=list(regime.seeds),
                       lr_grid=regime.lr_grid, resume=True, kept=regime.kept)
        if args.only:
            return 0
        regime.record.write_text(json.dumps(rows_as_dicts(rows, regime.record), indent=1))
    runs = len(regime.seeds) + max(len(regime.lr_grid), 1) - 1  # the grid on seed 0, then others
    hours = sum(r.train_s for r in rows) * runs / 3600
    baselines = [r for r in rows if r.name in BASELINES]
    ablations = [r for r in rows if r.name in ABLATIONS or r.name in LIGHT_WEIGHT]
    command = "python benchmarks/reference.py" + (
        f" --regime {args.regime}" if args.regime != "reference" else "")
    text = (f"# {args.regime.capitalize()} comparison\n\n{made_by(command)} "
            f"Preset `{regime.preset}`; "
            f"{runs * len(rows)} training runs, {hours:.1f} h of training in all (the seconds "
            f"below are this machine's, and depend on how it was shared; the accuracy does "
            f"not).\n\n"
            f"{format_rows(rows, config)}\n## Margins against RefineNet, seed by seed\n\n"
            f"Baselines:\n\n{format_margins(baselines, REFINENET, METRICS)}\n\n"
            f"Ablations{' and Light-Weight RefineNet' if regime.light_weight else ''}:\n\n"
            f"{format_margins(ablations, REFINENET, METRICS)}\n")
    print(text)
    (ROOT / "benchmarks" / f"{args.regime}.md").write_text(text)
    plot = (viz.plot_curves(rows, "reference: validation mIoU, mean and range of 3 seeds")
            if args.regime == "reference" else
            viz.plot_comparison(rows, f"{args.regime}: cpu-quick, amp {config.amp}, seeds "
                                      f"{list(regime.seeds)}"))
    plot.savefig(ROOT / "benchmarks" / f"{args.regime}.png", dpi=110)
    return 0


if __name__ == "__main__":
    sys.exit(main())
