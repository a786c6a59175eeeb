"""One probe per claim of RefineNet (issue 20), each on data drawn for it
(:mod:`rnlib.data.probes`), every contender trained with the course's recipe (preset
``cpu-probe``: the course's task for 200 fp32 steps, the same steps, learning rate and batch
for all), seed by seed:

- ``detail`` (§1, §3.1: multi-path refinement recovers the detail that downsampling loses):
  lines 1, 2 and 4 px wide; RefineNet against FCN-8s, dilated OS8 (and FCN-4s, the control
  at RefineNet's output stride, where it is registered); line IoU by width;
- ``context`` (§3.2: chained residual pooling captures context from large regions): discs and
  boxes that differ only in outline, radius 12, 24 and 48 px; RefineNet with CRP's 4 stages,
  with 2, and without CRP; IoU by radius;
- ``scale`` (§4.3, the cascades): discs and boxes 4 to 64 px across; the 4-, 2- and
  1-cascade; IoU by size bin;
- ``identity`` (§3.3: identity mappings make the network train well end to end): Shapes;
  RefineNet with and without the shortcuts of its RCUs and CRPs; test mIoU, and the gradient
  norm that reaches each backbone stage on the first training batches, at initialisation.

The table gives each bin's IoU (of the foreground classes, pooled over the test images of that
bin) as mean ± standard deviation over seeds, then the margin of the claim's model (the first
contender) over each other, seed by seed. Runs live under ``runs/probes`` and are reused.

    python benchmarks/probes.py --probe detail --seeds 0 1 2   # -> benchmarks/probe_detail.md
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from dataclasses import replace
from itertools import islice
from pathlib import Path

import torch
from coarse_paths import GRADIENT_BATCHES, STAGES, gradient_norms  # benchmarks/, beside this
from torch import nn
from torch.utils.data import DataLoader

from rnlib.checkpoint import resumable
from rnlib.compare import Entry, run_dir
from rnlib.config import PRESETS, TrainConfig, make_config, with_model
from rnlib.data import SegmentationDataset, eval_transform, pad_collate, probes
from rnlib.data.generated import generated_indices
from rnlib.evaluate import evaluate
from rnlib.metrics import ConfusionMatrix
from rnlib.runs import make_model, make_source, resolve_classes, train
from rnlib.tables import made_by, markdown_table

ROOT = Path(__file__).resolve().parents[1]
REFINENET = Entry("refinenet")
DATASETS = {"detail": "probe-detail", "context": "probe-context", "scale": "probe-scale",
            "identity": "shapes"}


def contenders(probe: str) -> dict[str, Entry]:
    """The probe's contenders, the claim's model first. In the detail probe FCN-4s is the
    control that predicts at RefineNet's output stride (1/4) without its blocks."""
    if probe == "detail":
        return {"RefineNet (4-cascade)": REFINENET, "FCN-8s": Entry("fcn8s"),
                "FCN-4s": Entry("fcn4s"), "Dilated OS8": Entry("dilated-os8")}
    if probe == "context":
        return {"CRP, 4 stages": REFINENET,
                "CRP, 2 stages": Entry("refinenet", (("crp_blocks", 2),)),
                "without CRP": Entry("refinenet", (("crp_blocks", 0),))}
    if probe == "scale":
        return {"4-cascade": REFINENET, "2-cascade": Entry("refinenet-2cascade"),
                "1-cascade": Entry("refinenet-1cascade")}
    return {"with shortcuts": REFINENET,
            "without shortcuts": Entry("refinenet", (("shortcuts", False),))}


def metrics(probe: str) -> list[str]:
    """The columns of the probe's table, in order."""
    if probe == "identity":
        return ["test mIoU", *(f"grad {s}" for s in STAGES)]
    bins = list(probes.BINS[probe])
    fg = probes.CLASSES[probe][1:]
    per_class = [f"{c}, {b}" for c in fg for b in bins] if len(fg) > 1 else []
    return [*bins, "all", *per_class]


def _loader(config: TrainConfig, split: str) -> DataLoader:
    """``split`` of the config's dataset, in order and unaugmented, in batches of its size."""
    data = SegmentationDataset(make_source(config, split), config.num_classes, eval_transform())
    return DataLoader(data, batch_size=config.batch_size, collate_fn=pad_collate)


def binned_iou(model: nn.Module, config: TrainConfig, probe: str) -> dict[str, float]:
    """IoU on the test split, pooled bin by bin (:func:`rnlib.data.probes.bin_of`): the mean
    over the foreground classes (a bin's column, and ``all``), and each class's (``CLASS,
    BIN``); NaN where a bin has no image."""
    loader = _loader(config, config.test_split)
    bins = [probes.bin_of(probe, i)
            for i in generated_indices(config.test_split, len(loader.dataset))]
    matrices = [ConfusionMatrix(config.num_classes) for _ in probes.BINS[probe]]
    seen = 0
    with torch.inference_mode():
        for images, masks in loader:
            for pred, mask in zip(model(images).argmax(1), masks):
                matrices[bins[seen]].update(pred, mask)
                seen += 1
    whole = ConfusionMatrix(config.num_classes)
    whole.matrix = sum(m.matrix for m in matrices)
    result = {"all": float(whole.iou()[1:].nanmean())}
    for name, matrix in zip(probes.BINS[probe], matrices):
        iou = matrix.iou()
        result[name] = float(iou[1:].nanmean())
        result |= {f"{c}, {name}": float(v) for c, v in zip(probes.CLASSES[probe][1:], iou[1:])}
    return result


def identity(model: nn.Module, config: TrainConfig, initial: dict[str, float]
             ) -> dict[str, float]:
    """Test mIoU of the trained model, and the backbone's gradient norms at initialisation."""
    result = {"test mIoU": evaluate(model, _loader(config, config.test_split),
                                    config.num_classes).miou}
    return result | {f"grad {s}": initial[s] for s in STAGES}


def first_batches(config: TrainConfig) -> list:
    """The first training batches, without augmentation (the gradients at initialisation)."""
    return list(islice(_loader(config, "train"), GRADIENT_BATCHES))


def run(probe: str, config: TrainConfig, folder: Path) -> dict[str, float]:
    """One contender and seed: trained (or reused from ``folder``) and measured."""
    initial = gradient_norms(make_model(config), first_batches(config)) \
        if probe == "identity" else {}
    model = train(config, folder, resume=resumable(folder, config), progress=False).model.eval()
    if probe == "identity":
        return identity(model, config, initial)
    return binned_iou(model, config, probe)


def _scaled(metric: str, values: list[float]) -> list[float]:
    """IoU in points (x100); gradient norms as they are."""
    return values if metric.startswith("grad") else [100 * v for v in values]


def _spread(values: list[float], digits: str, sign: str = "") -> str:
    """Mean (``sign="+"``: signed), with the standard deviation over seeds once there are
    several; '-' if none."""
    values = [v for v in values if v == v]  # a bin without images gives NaN
    if not values:
        return "-"
    text = format(statistics.fmean(values), sign + digits)
    return text + (f" ± {format(statistics.stdev(values), digits)}" if len(values) > 1 else "")


def report(probe: str, results: dict[str, list[dict[str, float]]], base: TrainConfig,
           command: str) -> str:
    """The probe's markdown: provenance, the metric per bin per contender, the margins."""
    columns = metrics(probe)
    digits = {m: ".3g" if m.startswith("grad") else ".1f" for m in columns}
    table = markdown_table(["contender", "seeds", *columns], [
        [name, len(rs), *(_spread(_scaled(m, [r[m] for r in rs]), digits[m]) for m in columns)]
        for name, rs in results.items()])
    claim, *others = results
    lines = []
    for other in others:
        for m in (m for m in columns if ", " not in m):  # bins and all; not class by class
            pairs = list(zip(results[claim], results[other]))
            diffs = [a - b for a, b in zip(_scaled(m, [a[m] for a, _ in pairs]),
                                           _scaled(m, [b[m] for _, b in pairs]))]
            diffs = [d for d in diffs if d == d]
            same = bool(diffs) and (all(d > 0 for d in diffs) or all(d < 0 for d in diffs))
            lines.append([other, m, _spread(diffs, digits[m], "+"),
                          "yes" if same else "no"])
    margins = markdown_table(["other contender", "metric", f"{claim} minus other",
                              "same sign in every seed"], lines)
    what = ("test mIoU; grad: the norm of the training loss's gradient over each backbone "
            f"stage's weights, mean over the first {GRADIENT_BATCHES} training batches, at "
            "initialisation" if probe == "identity" else
            "IoU of the foreground classes, pooled over the test images of each bin "
            "(*all*: over every test image); *CLASS, BIN*: that class's IoU")
    return (f"# Probe: {probe}\n\n{made_by(command)} Preset `cpu-probe` ({base.dataset} "
            f"{base.data_options}, crop {base.crop}, {base.backbone} pretrained on "
            f"{base.pretrained_backbone}, RefineNet options {base.model_options}, batch "
            f"{base.batch_size}, {base.optimizer} lr {base.lr:g}, {base.steps} steps for every "
            f"contender); mean ± standard deviation over seeds. Metric: {what}.\n\n{table}\n\n"
            f"Margins of {claim}, seed by seed (mean ± standard deviation of the differences):"
            f"\n\n{margins}\n")


def base_config(probe: str, steps: int | None, count: int | None, size: int | None
                ) -> TrainConfig:
    """The preset ``cpu-probe`` on the probe's data; ``steps``, ``count`` and ``size`` (the
    crop follows a smaller size) replace the preset's where given."""
    preset = PRESETS["cpu-probe"]
    options = {k: v for k, v in (("count", count), ("size", size)) if v is not None}
    base = make_config(preset, dataset=DATASETS[probe], steps=steps,
                       data_options={**preset.data_options, **options},
                       crop=min(preset.crop, size) if size else None)
    return resolve_classes(base, make_source(base, "train"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--probe", required=True, choices=[*probes.PROBES, "identity"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, help="default: the preset's")
    parser.add_argument("--count", type=int, help="training images (default: the preset's)")
    parser.add_argument("--size", type=int, help="image side (default: the preset's)")
    parser.add_argument("--runs", default=str(ROOT / "runs" / "probes"))
    parser.add_argument("--out", help="default: benchmarks/probe_PROBE.md (and .json)")
    args = parser.parse_args(argv)
    base = base_config(args.probe, args.steps, args.count, args.size)
    command = " ".join(["python benchmarks/probes.py --probe", args.probe, "--seeds",
                        *map(str, args.seeds)] + [f"--{k} {getattr(args, k)}" for k in
                                                  ("steps", "count", "size")
                                                  if getattr(args, k) is not None])
    out = Path(args.out or ROOT / "benchmarks" / f"probe_{args.probe}.md")
    data = base.data_options
    folder = Path(args.runs) / args.probe / f"{data['count']}x{data['size']}px-steps{base.steps}"
    results: dict[str, list[dict[str, float]]] = {}
    for seed in args.seeds:  # seed by seed: a run cut short still has whole seeds
        for name, entry in contenders(args.probe).items():
            config = replace(with_model(base, entry.model, entry.options), seed=seed)
            result = run(args.probe, config, run_dir(folder, entry, config.lr, seed))
            results.setdefault(name, []).append(result | {"seed": seed})
            print(f"{name}, seed {seed}: {result}", file=sys.stderr, flush=True)
        text = report(args.probe, results, base, command)  # after every seed: what is done
        out.write_text(text)
        done = args.seeds[:args.seeds.index(seed) + 1]
        out.with_suffix(".json").write_text(json.dumps(
            {"command": command, "seeds": done, "results": results}, indent=1))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
