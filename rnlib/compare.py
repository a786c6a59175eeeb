"""The course's headline experiment: RefineNet against FCN-32s, FCN-8s and a dilated network,
trained on the same data with the same time budget, measured on accuracy, boundaries and cost
(Lin et al., §1: dilated networks cost memory and compute, FCNs lose detail). The ablation mode
removes RefineNet's parts one at a time (§5.3, Table 6 in spirit): no chained pooling, no RCUs,
fewer cascades.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from . import bench
from .data import CLASSES
from .runs import train
from .train import TrainConfig, budget_scale, load_checkpoint, resumable

__all__ = ["Entry", "BASELINES", "ABLATIONS", "Row", "compare", "run_dir", "format_rows",
           "format_times", "rows_as_dicts"]


@dataclass(frozen=True)
class Entry:
    """One contender: a registry model and the options that make it what it is."""

    model: str
    options: tuple[tuple[str, object], ...] = ()
    refinenet_family: bool = True  # takes the preset's decoder options (widths, ...)


BASELINES = {
    "RefineNet (4-cascade)": Entry("refinenet"),
    "FCN-32s": Entry("fcn32s", refinenet_family=False),
    "FCN-8s": Entry("fcn8s", refinenet_family=False),
    "Dilated OS8": Entry("dilated-os8", refinenet_family=False),
}
ABLATIONS = {
    "RefineNet (4-cascade)": Entry("refinenet"),
    "without CRP": Entry("refinenet", (("crp_blocks", 0),)),
    "without RCUs": Entry("refinenet", (("rcus", 0), ("out_rcus", 0))),
    "2-cascade": Entry("refinenet-2cascade"),
    "1-cascade": Entry("refinenet-1cascade"),
}


@dataclass
class Row:
    name: str
    model: str
    miou: float
    boundary_f: float
    iou: list[float]
    params_m: float
    gflops: float
    latency_ms: float
    train_peak_mib: float
    train_s: float  # the training loop's own time, as the run's history records it
    total_s: float  # this entry's wall time in this call: data, training, evaluation, measuring
    reused: bool  # the run was finished already (compare(..., resume=True)) and not retrained
    steps: int
    checkpoint: str


def _config_for(base: TrainConfig, entry: Entry) -> TrainConfig:
    options = dict(base.model_options) if entry.refinenet_family else {}
    options.update(entry.options)
    return replace(base, model=entry.model, model_options=options, eval_every=0)


def run_dir(out_dir: str | Path, entry: Entry) -> Path:
    """Where ``entry``'s run lives: ``out_dir/refinenet``, ``out_dir/refinenet-crp_blocks0``..."""
    return Path(out_dir) / "-".join([entry.model] + [f"{k}{v}" for k, v in entry.options])


def _finished(checkpoint: Path) -> bool:
    state = load_checkpoint(checkpoint)
    return state["step"] >= state["total_steps"]


def compare(base: TrainConfig, entries: dict[str, Entry], out_dir: str | Path,
            progress: bool = True, resume: bool = False) -> list[Row]:
    """Train and measure every entry with ``base``'s data and budget; one Row each.

    With ``resume``, an entry whose folder holds a run of the same settings continues it (an
    interrupted comparison picks up where it stopped) or, if that run finished, reuses it:
    the course's notebooks 08 and 09 reuse the RefineNet that notebook 07 trained. Folders of
    other settings are trained anew.
    """
    rows = []
    for name, entry in entries.items():
        config, folder = _config_for(base, entry), run_dir(out_dir, entry)
        start = time.perf_counter()
        resuming = resume and resumable(folder, config)
        reused = resuming and _finished(folder / "last.pt")
        trainer = train(config, folder, resume=resuming, progress=progress)
        model, history = trainer.model, trainer.history
        size = (config.crop, config.crop)
        cost = bench.measure(name, model, size, channels_last=config.channels_last, memory=False)
        train_peak = bench.peak_memory(model, size, config.batch_size, train=True,
                                       channels_last=config.channels_last)
        rows.append(Row(name, entry.model, history["val_miou"][-1], history["val_boundary_f"][-1],
                        history["val_iou"][-1], cost.params_m, cost.gflops, cost.latency_ms,
                        train_peak, history["elapsed_s"][-1], time.perf_counter() - start,
                        reused, trainer.step, str(folder / "last.pt")))
        if progress:
            print(f"{name}: mIoU {100 * rows[-1].miou:.1f}, {trainer.step} steps, "
                  f"{rows[-1].total_s:.0f} s{' (reused)' if reused else ''}", flush=True)
    return rows


def format_rows(rows: list[Row], config: TrainConfig, classes: tuple[str, ...] = CLASSES) -> str:
    """The comparison as markdown: the summary table and the per-class IoU table."""
    budget = (f"{config.time_budget_s * budget_scale():.0f} s of training per model"
              if config.time_budget_s else f"{config.epochs} epochs per model")
    head = (f"Data: {config.dataset} {config.data_options}, crop {config.crop}, batch "
            f"{config.batch_size}; backbone {config.backbone} (random init: "
            f"{not config.pretrained_backbone}); RefineNet options {config.model_options}; "
            f"{config.optimizer} lr {config.lr}; {budget}; seed {config.seed}. Latency: batch 1 at "
            f"{config.crop}x{config.crop}, inference; peak memory: one training step at batch "
            f"{config.batch_size}.\n")
    lines = ["| model | mIoU | boundary F | params (M) | GFLOPs | latency (ms) | train peak "
             "mem (MiB) | steps | training (s) |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.name} | {100 * r.miou:.1f} | {100 * r.boundary_f:.1f} | "
                     f"{r.params_m:.2f} | {r.gflops:.2f} | {r.latency_ms:.0f} | "
                     f"{r.train_peak_mib:.0f} | {r.steps} | {r.train_s:.0f} |")
    per_class = ["| model | " + " | ".join(classes) + " |", "|---" * (len(classes) + 1) + "|"]
    for r in rows:
        per_class.append(f"| {r.name} | " + " | ".join(f"{100 * v:.1f}" for v in r.iou) + " |")
    return (head + "\n" + "\n".join(lines) + "\n\nIoU per class:\n\n" + "\n".join(per_class)
            + "\n\nTime per model, slowest first:\n\n" + format_times(rows) + "\n")


def format_times(rows: list[Row]) -> str:
    """Each model's time in the comparison, slowest first: its training loop, and everything
    (data, calibration, evaluation, measuring; a reused run is not retrained)."""
    lines = ["| model | training (s) | total (s) |", "|---|---|---|"]
    for r in sorted(rows, key=lambda r: -r.total_s):
        reused = " (reused a finished run)" if r.reused else ""
        lines.append(f"| {r.name} | {r.train_s:.0f} | {r.total_s:.0f}{reused} |")
    lines.append(f"| **all** | **{sum(r.train_s for r in rows if not r.reused):.0f}** | "
                 f"**{sum(r.total_s for r in rows):.0f}** |")
    return "\n".join(lines)


def rows_as_dicts(rows: list[Row]) -> list[dict]:
    return [asdict(r) for r in rows]
