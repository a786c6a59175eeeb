"""What chained residual pooling does inside the reference's trained RefineNets (issue 9: the
CRP claim fails here; this finds out why).

CRP (§3.2) adds, to ``relu(x)``, a chain of 5x5 poolings and 3x3 convolutions that gathers
context from a growing window: four blocks see 25x25 positions of their block's map. On 128x128
Shapes the four RefineNet blocks work at 4x4, 8x8, 16x16 and 32x32, so three of the four windows
cover their whole map.
For each seed of the reference's RefineNet (the preset ``reference`` at its chosen learning rate;
trained here if ``runs/reference`` does not hold it, else reused) this measures, on the test
split:

- how large CRP's added term is next to ``relu(x)`` (the ratio of their norms), block by block;
- the mIoU when CRP is switched off at test time (its chain removed, so the block passes
  ``relu(x)`` on), everywhere and in one block at a time: what the trained network relies on.

    .venv/bin/python benchmarks/crp_probe.py          # -> benchmarks/crp_probe.md
"""

from __future__ import annotations

import statistics
import sys
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader

from rnlib.blocks import ChainedResidualPooling
from rnlib.checkpoint import resumable
from rnlib.compare import BASELINES, run_dir
from rnlib.config import PRESETS, with_model
from rnlib.data import SegmentationDataset, eval_transform, pad_collate
from rnlib.evaluate import evaluate
from rnlib.results import reference
from rnlib.runs import make_source, resolve_classes, train
from rnlib.tables import made_by, markdown_table

ROOT = Path(__file__).resolve().parents[1]
SEEDS = [0, 1, 2]
ENTRY = BASELINES["RefineNet (4-cascade)"]


def crps(model: nn.Module) -> list[tuple[str, ChainedResidualPooling]]:
    return [(name, m) for name, m in model.named_modules()
            if isinstance(m, ChainedResidualPooling)]


@contextmanager
def switched_off(blocks: list[ChainedResidualPooling]):
    """The blocks without their chain (``relu(x)`` passes on), restored afterwards."""
    chains = [b.convs for b in blocks]
    for b in blocks:
        b.convs = nn.ModuleList()
    try:
        yield
    finally:
        for b, convs in zip(blocks, chains):
            b.convs = convs


def added_ratio(model: nn.Module, loader: DataLoader) -> list[float]:
    """Per CRP: the norm of its added term over the norm of ``relu(x)``, over the whole split."""
    sums = [[0.0, 0.0] for _ in crps(model)]

    def hook(i):
        def record(module, inputs, out):
            base = torch.relu(inputs[0])
            sums[i][0] += float((out - base).square().sum())
            sums[i][1] += float(base.square().sum())
        return record

    handles = [m.register_forward_hook(hook(i)) for i, (_, m) in enumerate(crps(model))]
    with torch.inference_mode():
        for images, _ in loader:
            model(images)
    for h in handles:
        h.remove()
    return [(added / base) ** 0.5 for added, base in sums]


def main() -> int:
    lr = next(r.lr for r in reference() if r.name == "RefineNet (4-cascade)")
    base = PRESETS["reference"]
    base = resolve_classes(base, make_source(base, "train"))  # as compare() does: same settings
    config = replace(with_model(base, ENTRY.model, ENTRY.options), lr=lr)
    source = make_source(config, config.test_split)
    results = []
    for seed in SEEDS:
        folder = run_dir(ROOT / "runs" / "reference", ENTRY, lr, seed)
        run_config = replace(config, seed=seed)
        model = train(run_config, folder, resume=resumable(folder, run_config),
                      progress=False).model.eval()
        data = SegmentationDataset(source, model.num_classes, eval_transform())
        loader = DataLoader(data, batch_size=config.batch_size, collate_fn=pad_collate)
        blocks = crps(model)
        miou = {"as trained": evaluate(model, loader, model.num_classes).miou}
        with switched_off([b for _, b in blocks]):
            miou["CRP off everywhere"] = evaluate(model, loader, model.num_classes).miou
        for name, block in blocks:
            with switched_off([block]):
                miou[f"CRP off in {name}"] = evaluate(model, loader, model.num_classes).miou
        results.append({"miou": miou, "ratio": added_ratio(model, loader),
                        "names": [name for name, _ in blocks]})
        print(f"seed {seed}: {miou}", file=sys.stderr, flush=True)
    names = results[0]["names"]
    seeds = [f"seed {s}" for s in SEEDS]
    mious = [[100 * r["miou"][key] for r in results] for key in results[0]["miou"]]
    ratios = [[r["ratio"][i] for r in results] for i in range(len(names))]
    lines = [markdown_table(["test mIoU", *seeds, "mean"], [
        [key, *(f"{v:.1f}" for v in values), f"{statistics.fmean(values):.1f}"]
        for key, values in zip(results[0]["miou"], mious)]), "",
        markdown_table(["CRP", "added term / relu(x), by norm", *seeds], [
            [name, f"{statistics.fmean(values):.2f}", *(f"{v:.2f}" for v in values)]
            for name, values in zip(names, ratios)])]
    text = (f"# Chained residual pooling in the trained reference RefineNets\n\n"
            f"{made_by('python benchmarks/crp_probe.py')} Preset `reference` ({config.dataset} "
            f"{config.data_options}), RefineNet at lr {lr:g} "
            f"(chosen on validation by benchmarks/reference.py), seeds {SEEDS}; test split. "
            f"CRP off: the block's chain removed at test time, so it passes relu(x) on.\n\n"
            + "\n".join(lines) + "\n")
    print(text)
    (ROOT / "benchmarks" / "crp_probe.md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
