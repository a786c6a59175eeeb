"""The course's headline experiment: RefineNet against FCN-32s, FCN-8s, FCN-4s and a dilated
network, and RefineNet taken apart (Lin et al., §1: dilated networks cost memory and compute, FCNs
lose detail; §4 and §4.3: what chained pooling and the cascade are worth).

Every contender starts from the same pretrained backbone and trains on the same data for the
same number of steps. A fair protocol, for a verdict:

- the same learning-rate grid for every model (``lr_grid``), the rate chosen on the
  validation split by the first seed's final mIoU;
- several seeds (``seeds``), reported as mean and standard deviation;
- results on a separate split (``split``, default the config's test split);
- the learning curves, and how much each model still moved over its last 20% of steps
  (``plateau``: the trend, on the mean over seeds; ``swing``: how far single evaluations
  jump), to show whether training was long enough.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from . import bench
from .budget import describe_budget
from .checkpoint import CHECKPOINT
from .config import TrainConfig, with_model
from .contender_runs import RECORD, ContenderRuns, Entry, KeptRun, run_dir
from .history import History
from .recorded_paths import recorded_path
from .runs import class_names, make_source, resolve_classes
from .side_by_side import processes_for
from .tables import markdown_table
from .train import Trainer

__all__ = ["Entry", "BASELINES", "HEADLINE", "LIGHT_WEIGHT", "ABLATIONS", "GROUPS", "Row",
           "KeptRun", "compare", "run_dir", "describe_data", "format_rows", "format_times",
           "format_margins", "format_versus", "verdict", "per_seed", "seed_margins",
           "rows_as_dicts", "plateau", "swing"]


# The order is also the order in which runs start side by side: a free process takes the next.
BASELINES = {
    "RefineNet (4-cascade)": Entry("refinenet"),
    "FCN-32s": Entry("fcn32s"),
    "FCN-8s": Entry("fcn8s"),
    "Dilated OS8": Entry("dilated-os8"),
    "FCN-4s": Entry("fcn4s"),  # the control: RefineNet's output stride (1/4) without its blocks
}
# The comparison the course decides (rnlib compare's default, notebook 08): RefineNet against the
# baselines nearest to it, FCN-32s left out (the weakest; its recorded seeds are quoted instead)
HEADLINE = {name: entry for name, entry in BASELINES.items() if name != "FCN-32s"}
# RefineNet and its light-weight variant (Nekrasov et al., BMVC 2018): accuracy against cost
LIGHT_WEIGHT = {
    "RefineNet (4-cascade)": Entry("refinenet"),
    "Light-Weight RefineNet": Entry("refinenet-lw"),
}
ABLATIONS = {
    "RefineNet (4-cascade)": Entry("refinenet"),
    "without CRP": Entry("refinenet", (("crp_blocks", 0),)),
    "without RCUs": Entry("refinenet", (("rcus", 0), ("out_rcus", 0))),
    "2-cascade": Entry("refinenet-2cascade"),
    "1-cascade": Entry("refinenet-1cascade"),
}
# the groups that rnlib compare --contenders and benchmarks/reference.py name
GROUPS = {"headline": HEADLINE, "baselines": BASELINES, "light-weight": LIGHT_WEIGHT,
          "ablations": ABLATIONS, "all": {**BASELINES, **LIGHT_WEIGHT, **ABLATIONS}}


@dataclass
class Row:
    """One contender's result: means over ``seeds`` (``*_std``: their standard deviation)."""

    name: str
    model: str
    lr: float  # the learning rate chosen on validation (or the config's, without a grid)
    split: str  # where miou, boundary_f and iou were measured
    seeds: list[int]
    miou: float
    miou_std: float
    boundary_f: float
    boundary_f_std: float
    iou: list[float]
    iou_std: list[float]
    miou_per_seed: list[float]
    plateau: float | None  # change of the mean validation mIoU over the last 20% of steps
    params_m: float
    gflops: float
    latency_ms: float
    train_peak_mib: float
    train_s: float  # the training loop's own time per run (mean over seeds)
    total_s: float  # this entry's seconds in this call (its runs' own, side by side or not)
    reused: bool  # every run was finished already (compare(..., resume=True)) and not retrained
    steps: int
    checkpoints: list[str]
    classes: list[str]
    lr_search: dict[str, float] = field(default_factory=dict)  # lr -> validation mIoU
    curves: list[dict] = field(default_factory=list)  # per seed: validation mIoU by step, seconds
    boundary_f_per_seed: list[float] = field(default_factory=list)
    iou_per_seed: list[list[float]] = field(default_factory=list)  # seed by seed, class by class
    swing: float | None = None  # largest jump of an evaluation from the last, last 20% of steps


def _tail(histories: Sequence[History]) -> list[float]:
    """The validation mIoU averaged over ``histories`` (a model's seeds), at the evaluations in
    the last 20% of the steps."""
    curves = [(h.eval_step, h.val_miou) for h in histories]
    n = min((len(steps) for steps, _ in curves), default=0)
    if n == 0:
        return []
    steps = curves[0][0][:n]
    mean = [statistics.fmean(mious[i] for _, mious in curves) for i in range(n)]
    return [m for s, m in zip(steps, mean) if s >= 0.8 * steps[-1]]


def plateau(histories: Sequence[History]) -> float | None:
    """How much the validation mIoU (the mean of ``histories``, a model's seeds) changed over
    the last 20% of the steps: its last evaluation minus the first one in that stretch. Under 1
    point, the model has stopped rising. None without two evaluations in the stretch."""
    tail = _tail(histories)
    return tail[-1] - tail[0] if len(tail) >= 2 else None


def swing(histories: Sequence[History]) -> float | None:
    """The largest distance of an evaluation in the last 20% of the steps from the last one
    (the mean of ``histories``): how much single evaluations still jump around the trend that
    :func:`plateau` measures. None without two evaluations in the stretch."""
    tail = _tail(histories)
    return max(abs(m - tail[-1]) for m in tail) if len(tail) >= 2 else None


def compare(base: TrainConfig, entries: dict[str, Entry], out_dir: str | Path, *,
            seeds: list[int] | None = None, lr_grid: list[float] = (), split: str | None = None,
            progress: bool = True, resume: bool = False, kept: str | Path | None = None,
            processes: int | None = None) -> list[Row]:
    """Train and measure every entry with ``base``'s data and budget; one Row each.

    With ``resume``, a run whose folder holds a run of the same settings continues it (an
    interrupted comparison picks up where it stopped) or, if that run finished, reuses it:
    the course's notebooks 08 and 09 reuse the RefineNet that notebook 07 trained. ``kept``
    is a folder laid out as ``out_dir`` where every finished run also leaves its record and
    metrics (:class:`KeptRun`, no weights); with ``resume`` they stand in for runs whose
    checkpoints are gone. ``processes`` runs train side by side (:mod:`rnlib.side_by_side`;
    default: one per core when ``base`` computes on one CPU thread, else one after another in
    this process); the digits are the same either way.
    """
    if processes is not None and processes < 1:
        raise ValueError(f"processes must be >= 1 (1: one run after another), got {processes}")
    seeds = list(seeds) if seeds else [base.seed]
    split = split or base.test_split
    base = resolve_classes(base, make_source(base, "train"))
    classes = list(class_names(make_source(base, "train"), base.num_classes))
    configs = {name: with_model(base, e.model, e.options) for name, e in entries.items()}
    runs = ContenderRuns(entries, configs, out_dir, kept, processes or processes_for(
        base, len(entries) * max(len(lr_grid), len(seeds))), progress)
    # the same learning-rate grid for every model, judged on validation by the first seed
    runs.ahead([(name, lr, seeds[0]) for name in entries for lr in lr_grid], resume, None)
    chosen = {}
    for name, config in configs.items():
        search = {f"{lr:g}": runs.read(name, lr, seeds[0], resume, None)[0].history.val_miou[-1]
                  for lr in lr_grid}
        chosen[name] = (max(lr_grid, key=lambda v: search[f"{v:g}"]) if lr_grid else config.lr,
                        search)
    resume = resume or bool(lr_grid)  # the first seed's run at the chosen rate is the grid's
    runs.ahead([(name, chosen[name][0], seed) for name in entries for seed in seeds], resume,
               split)
    rows = []
    for name, entry in entries.items():
        (lr, search), done = chosen[name], [runs.read(name, chosen[name][0], seed, resume, split)
                                            for seed in seeds]
        rows.append(_row(name, entry, replace(configs[name], lr=lr), split=split, seeds=seeds,
                         results=[result for _, result in done], runs=[run for run, _ in done],
                         lr_search=search, classes=classes, reused=not runs.trained[name],
                         seconds=runs.spent[name]))
        if progress:
            print(f"{name}: {split} mIoU {100 * rows[-1].miou:.1f} ± "
                  f"{100 * rows[-1].miou_std:.1f} (lr {lr:g}), {rows[-1].total_s:.0f} s"
                  f"{' (reused)' if rows[-1].reused else ''}", flush=True)
    return rows


def _row(name: str, entry: Entry, config: TrainConfig, *, split: str, seeds: list[int],
         results: list[dict], runs: list[Trainer | KeptRun], lr_search: dict[str, float],
         classes: list[str], reused: bool, seconds: float) -> Row:
    """One contender's Row: ``results`` (metrics on ``split``) and ``runs`` seed by seed,
    trained with ``config`` (its lr the one chosen), and the cost of its model; ``seconds``
    is the contender's work so far in this call."""
    started = time.perf_counter() - seconds
    model = runs[-1].model
    size = (config.crop, config.crop)
    cost = bench.measure(name, model, size, channels_last=config.channels_last, memory=False)
    train_peak = bench.peak_memory(model, size, config.batch_size, train=True,
                                   channels_last=config.channels_last)

    def spread(values: list[float]) -> tuple[float, float]:
        return statistics.fmean(values), statistics.pstdev(values) if len(values) > 1 else 0.0

    miou, miou_std = spread([r["miou"] for r in results])
    boundary, boundary_std = spread([r["boundary_f"] for r in results])
    per_class = [spread([r["iou"][c] for r in results]) for c in range(len(classes))]
    return Row(name=name, model=entry.model, lr=config.lr, split=split, seeds=seeds, miou=miou,
               miou_std=miou_std, boundary_f=boundary, boundary_f_std=boundary_std,
               iou=[m for m, _ in per_class], iou_std=[s for _, s in per_class],
               miou_per_seed=[r["miou"] for r in results],
               boundary_f_per_seed=[r["boundary_f"] for r in results],
               iou_per_seed=[r["iou"] for r in results],
               plateau=plateau([t.history for t in runs]),
               swing=swing([t.history for t in runs]), params_m=cost.params_m,
               gflops=cost.gflops, latency_ms=cost.latency_ms, train_peak_mib=train_peak,
               train_s=statistics.fmean(t.history.elapsed_s[-1] for t in runs),
               total_s=time.perf_counter() - started, reused=reused, steps=runs[-1].step,
               checkpoints=[str(t.out_dir / (RECORD if isinstance(t, KeptRun) else CHECKPOINT))
                            for t in runs],
               classes=classes, lr_search=lr_search,
               curves=[{"seed": seed, "step": t.history.eval_step,
                        "seconds": t.history.eval_elapsed_s, "miou": t.history.val_miou}
                       for seed, t in zip(seeds, runs)])


def _pm(mean: float, std: float, seeds: int) -> str:
    """A percentage, with its spread over seeds when there are several."""
    return f"{100 * mean:.1f}" + (f" ± {100 * std:.1f}" if seeds > 1 else "")


def describe_data(config: TrainConfig) -> str:
    """The data a recorded table was trained on: dataset, its options, crop and batch."""
    return (f"{config.dataset} {config.data_options}, crop {config.crop}, batch "
            f"{config.batch_size}")


def format_rows(rows: list[Row], config: TrainConfig) -> str:
    """The comparison as markdown: protocol, summary table, per-class IoU, times."""
    first = rows[0]
    budget = (f"{describe_budget(config)} per model" if config.time_budget_s else
              f"{first.steps} steps per model ({describe_budget(config)})")
    spread = ", mean ± standard deviation over seeds" if len(first.seeds) > 1 else ""
    grid = (f"learning rate chosen per model on validation from {list(first.lr_search)}"
            if first.lr_search else f"learning rate {config.lr:g}")
    head = (f"Data: {describe_data(config)}; backbone {config.backbone} (pretrained: "
            f"{config.pretrained_backbone or 'no'}); RefineNet options {config.model_options}; "
            f"{config.optimizer}, {grid}; {budget}; seeds {first.seeds}; "
            f"{f'{config.threads} CPU thread per run; ' if config.threads else ''}metrics on the "
            f"{first.split} split{spread}. "
            f"Latency: batch 1 at {config.crop}x{config.crop}, inference; peak memory: one "
            f"training step at batch {config.batch_size}; last 20%: how much the validation "
            f"mIoU (mean of the seeds) changed over the last 20% of steps, from the first "
            f"evaluation in that stretch to the last; swing: the largest distance of an "
            f"evaluation in that stretch from the last.\n")
    n = len(first.seeds)
    summary = markdown_table(
        ["model", "lr", "mIoU", "boundary F", "last 20%", "swing", "params (M)", "GFLOPs",
         "latency (ms)", "train peak mem (MiB)", "steps", "training (s)"],
        [[r.name, f"{r.lr:g}", _pm(r.miou, r.miou_std, n),
          _pm(r.boundary_f, r.boundary_f_std, n),
          "-" if r.plateau is None else f"{100 * r.plateau:+.1f}",
          "-" if r.swing is None else f"{100 * r.swing:.1f}", f"{r.params_m:.2f}",
          f"{r.gflops:.2f}", f"{r.latency_ms:.0f}", f"{r.train_peak_mib:.0f}", r.steps,
          f"{r.train_s:.0f}"] for r in rows])
    per_class = markdown_table(["model", *first.classes],
                               [[r.name, *(_pm(m, s, n) for m, s in zip(r.iou, r.iou_std))]
                                for r in rows])
    search = ""
    if first.lr_search:
        search = (f"\n\nValidation mIoU of each learning rate (seed {first.seeds[0]}):\n\n"
                  + markdown_table(["model", *first.lr_search],
                                   [[r.name, *(f"{100 * v:.1f}" for v in r.lr_search.values())]
                                    for r in rows]))
    return (head + "\n" + summary + f"\n\nIoU per class ({first.split}):\n\n" + per_class
            + search + "\n\nTime per model, slowest first:\n\n" + format_times(rows) + "\n")


def per_seed(row: Row, metric: str) -> list[float]:
    """``metric`` of ``row``, seed by seed: "mIoU", "boundary F" or a class's name (its IoU)."""
    if metric == "mIoU":
        return row.miou_per_seed
    if metric == "boundary F":
        return row.boundary_f_per_seed
    if metric in row.classes:
        return [iou[row.classes.index(metric)] for iou in row.iou_per_seed]
    raise ValueError(f"unknown metric {metric!r}: choose mIoU, boundary F or a class of "
                     f"{row.classes}")


def seed_margins(row: Row, reference: Row, metric: str) -> list[float]:
    """``metric`` of ``row`` minus the same of ``reference``, seed by seed (the same seed sees
    the same data in the same order), in points."""
    return [100 * (a - b) for a, b in zip(per_seed(row, metric), per_seed(reference, metric))]


def format_margins(rows: list[Row], reference: str, metrics: Sequence[str] = ("mIoU",)) -> str:
    """Each model against ``reference``, metric by metric and seed by seed (the same seed sees
    the same data in the same order): the mean difference, its range over seeds, whether its
    sign holds in every seed, and each side's spread (standard deviation over seeds)."""
    ref = next(r for r in rows if r.name == reference)
    lines = []
    for r in rows:
        if r is ref:
            continue
        for metric in metrics:
            mine, theirs = per_seed(r, metric), per_seed(ref, metric)
            diffs = seed_margins(r, ref, metric)
            same = all(d > 0 for d in diffs) or all(d < 0 for d in diffs)
            lines.append([r.name, metric, f"{statistics.fmean(diffs):+.1f}",
                          f"{min(diffs):+.1f} .. {max(diffs):+.1f}", "yes" if same else "no",
                          f"{100 * statistics.pstdev(mine):.1f}; "
                          f"{100 * statistics.pstdev(theirs):.1f}"])
    return markdown_table(["model", "metric", f"minus {reference}", "range over seeds",
                           "every seed", f"spread: model; {reference}"], lines)


def format_versus(mine: list[Row], reference: list[Row]) -> str:
    """Your rows next to the recorded ones of the same models and regime (``reference``, e.g.
    ``rnlib.results.quick()``): mIoU, boundary F and the steps each was trained for (the
    recorded: mean ± standard deviation over its seeds)."""
    ref = {r.name: r for r in reference}
    lines = []
    for r in mine:
        if r.name not in ref:
            continue
        t = ref[r.name]
        n = len(t.seeds)
        lines.append([r.name, f"{100 * r.miou:.1f}", _pm(t.miou, t.miou_std, n),
                      f"{100 * r.boundary_f:.1f}", _pm(t.boundary_f, t.boundary_f_std, n),
                      r.steps, t.steps])
    return markdown_table(["model", "your mIoU", "recorded mIoU", "your boundary F",
                           "recorded boundary F", "your steps", "recorded steps"], lines)


def verdict(mine: list[Row], recorded: list[Row], claim: str = "RefineNet (4-cascade)",
            metric: str = "mIoU") -> str:
    """The one line that decides: ``claim``'s lead over each other model of your run
    (``mine``), and whether it is beyond the spread of the same regime's recorded seeds
    (``recorded``): a lead is *decided* when its sign holds in every recorded seed and in
    your run. Leads in points, positive where ``claim`` is ahead."""
    ref = {r.name: r for r in recorded}
    yours = next((r for r in mine if r.name == claim), None)
    if yours is None:
        raise ValueError(f"verdict: your rows have no {claim!r} (they have "
                         f"{[r.name for r in mine]}); pass claim= one of them")
    parts, decided = [], []
    for other in (r for r in mine if r is not yours):
        lead = 100 * statistics.fmean(
            a - b for a, b in zip(per_seed(yours, metric), per_seed(other, metric)))
        seeds = (seed_margins(ref[claim], ref[other.name], metric)
                 if claim in ref and other.name in ref else [])
        holds = bool(seeds) and lead != 0 and all(d != 0 and (d > 0) == (lead > 0)
                                                  for d in seeds)
        decided.append(holds)
        spread = (f" (recorded {statistics.fmean(seeds):+.1f}, {min(seeds):+.1f} .. "
                  f"{max(seeds):+.1f} over {len(seeds)} seeds)" if seeds else " (not recorded)")
        parts.append(f"{other.name} {lead:+.1f}{spread}")
    outcome = ("Decided: every lead holds in every recorded seed" if all(decided) else
               f"Not decided: {decided.count(False)} of {len(decided)} leads change sign over "
               "the recorded seeds or were not recorded")
    return f"**{claim}'s {metric} lead** over {'; '.join(parts)}. {outcome}."


def format_times(rows: list[Row]) -> str:
    """Each model's time in the comparison, slowest first: its training loop (per run), and
    everything (data, evaluation, measuring; a reused run is not retrained)."""
    lines = [[r.name, f"{r.train_s:.0f}",
              f"{r.total_s:.0f}{' (reused finished runs)' if r.reused else ''}"]
             for r in sorted(rows, key=lambda r: -r.total_s)]
    lines.append(["**all**", "", f"**{sum(r.total_s for r in rows):.0f}**"])
    return markdown_table(["model", "training per run (s)", "total (s)"], lines)


def rows_as_dicts(rows: list[Row], record: str | Path) -> list[dict]:
    """``rows`` as the JSON file ``record`` holds them: its runs named by paths that hold on
    any machine (:func:`rnlib.recorded_paths.recorded_path`; ``rnlib.results.load_rows`` reads
    them back)."""
    return [asdict(replace(r, checkpoints=[recorded_path(c, record) for c in r.checkpoints]))
            for r in rows]
