"""Why RefineNet's coarse paths do not reach its output in the course's quick runs (issue 20).

benchmarks/crp_probe.md found that switching CRP off in the two coarse blocks of the trained
reference RefineNets changes test mIoU by 0.0. This probe asks the question of every input
path. For the course's RefineNet (preset ``cpu-probe``: the course's task for 200 fp32 steps;
4-cascade: one backbone stage per block, §3.1, Fig. 2c), variant by variant, it

- trains it (or reuses a finished run under ``runs/coarse_paths``);
- switches each input path off at test time (the adapted feature of layer1..layer4 replaced by
  zeros before the cascade, one at a time) and each CRP (§3.2; its chain removed, one block at
  a time), and reports the test mIoU lost: how much the output depends on each;
- measures the gradient norm that reaches each path's adapted feature and each backbone stage's
  weights, on the first training batches, at initialisation and after training.

The variants: the default (feature dropout 0.5 on layer3 and layer4, as in the released code),
feature dropout 0 (the issue's prime suspect), and the default trained twice as long.

    .venv/bin/python benchmarks/coarse_paths.py     # -> benchmarks/coarse_paths.md
    .venv/bin/python benchmarks/coarse_paths.py --seeds 0 1 2 --variants "dropout 0"
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import statistics
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from itertools import islice
from pathlib import Path

import torch
import torch.nn.functional as F
from crp_probe import crps, switched_off  # benchmarks/, beside this script
from torch import nn
from torch.utils.data import DataLoader

from rnlib.atomic import write_text_atomic
from rnlib.checkpoint import resumable
from rnlib.compare import Entry, run_dir
from rnlib.config import PRESETS, TrainConfig, with_model
from rnlib.constants import IGNORE_INDEX
from rnlib.data import SegmentationDataset, eval_transform, pad_collate
from rnlib.evaluate import evaluate
from rnlib.runs import make_model, make_source, resolve_classes, train
from rnlib.tables import made_by, markdown_table

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("layer1", "layer2", "layer3", "layer4")
GRADIENT_BATCHES = 4  # the first batches of the training split, without augmentation
VERDICT = "## What the runs show"  # the file's hand-written reading, kept across re-runs
# name -> (model options, changes to the preset's TrainConfig: steps 200, lr 1e-3)
VARIANTS: dict[str, tuple[dict[str, object], dict[str, object]]] = {
    "default (dropout 0.5)": ({}, {}),
    "dropout 0": ({"feature_dropout": 0.0}, {}),
    "default, 400 steps": ({}, {"steps": 400}),
    "BatchNorm on each fusion term": ({"norm": "fusion"}, {}),
    "residual branches start at zero": ({"residual_init": "zero"}, {}),
    "2 CRP stages": ({"crp_blocks": 2}, {}),
    "lr 3e-4": ({}, {"lr": 3e-4}),
    "layer1 and layer2 paths only": ({"stages": (0, 1)}, {}),
}


@contextmanager
def path_zeroed(model: nn.Module, stage: int) -> Iterator[None]:
    """``model`` (a RefineNet) with the adapted feature of backbone stage ``stage`` (0: layer1)
    replaced by zeros before the cascade; restored afterwards."""
    handle = model.decoder.adapt[str(stage)].register_forward_hook(
        lambda module, inputs, out: torch.zeros_like(out))
    try:
        yield
    finally:
        handle.remove()


def paths(model: nn.Module) -> list[tuple[int, str]]:
    """The backbone stages that feed ``model``'s decoder: (index, name), finest first."""
    return [(i, STAGES[i]) for i in sorted(int(k) for k in model.decoder.adapt)]


def block_names(model: nn.Module) -> list[str]:
    """Each block of a 4-cascade, named by the backbone stage it takes, coarsest first."""
    return [STAGES[group[0] % 4] for group in model.decoder.groups]


def gradient_norms(model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]]
                   ) -> dict[str, float]:
    """The norm of the training loss's gradient at each path's adapted feature (``path
    layerN``) and at each backbone stage's weights (``layerN``), mean over ``batches``; on a
    copy of ``model`` in training mode (dropout on, as in training), dropout seeded."""
    model = copy.deepcopy(model).train()
    features: dict[str, torch.Tensor] = {}

    def keep(name: str):
        def hook(module, inputs, out):
            out.retain_grad()
            features[name] = out
        return hook

    handles = [model.decoder.adapt[str(i)].register_forward_hook(keep(f"path {name}"))
               for i, name in paths(model)]
    sums: dict[str, list[float]] = {}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        for images, masks in batches:
            model.zero_grad(set_to_none=True)
            F.cross_entropy(model(images), masks, ignore_index=IGNORE_INDEX).backward()
            norms = {name: float(f.grad.norm()) for name, f in features.items()}
            for name in STAGES:  # a stage that feeds no path gets no gradient
                grads = [p.grad.flatten() for p in getattr(model.backbone, name).parameters()
                         if p.grad is not None]
                if grads:
                    norms[name] = float(torch.cat(grads).norm())
            for name, value in norms.items():
                sums.setdefault(name, []).append(value)
    for h in handles:
        h.remove()
    return {name: statistics.fmean(values) for name, values in sums.items()}


def inside_blocks(model: nn.Module, loader: DataLoader) -> dict[str, float]:
    """Per block of the 4-cascade, named by its backbone stage, over ``loader``: the share of
    CRP's input above zero (what CRP's first ReLU lets through, §3.2), and where the block also
    takes the previous block's output, the norm of that path's term in the fusion over the
    backbone path's."""
    sums: dict[str, list[float]] = {}

    def add(key: str, part: float, whole: float) -> None:
        total = sums.setdefault(key, [0.0, 0.0])
        total[0] += part
        total[1] += whole

    def live(stage: str):
        return lambda module, inputs: add(f"live {stage}", float((inputs[0] > 0).sum()),
                                          inputs[0].numel())

    def fused(stage: str, which: int):
        def hook(module, inputs, out):
            square = float(out.square().sum())
            add(f"cascade/backbone {stage}", *((0.0, square) if which == 0 else (square, 0.0)))
        return hook

    handles = []
    for block, stage in zip(model.decoder.blocks, block_names(model)):
        handles.append(block.pool.register_forward_pre_hook(live(stage)))
        if len(block.in_channels) == 2:  # [backbone path, the previous block's output]
            handles += [conv_.register_forward_hook(fused(stage, i))
                        for i, conv_ in enumerate(block.fuse.convs)]
    with torch.inference_mode():
        for images, _ in loader:
            model(images)
    for h in handles:
        h.remove()
    return {key: part / whole if key.startswith("live") else (part / whole) ** 0.5
            for key, (part, whole) in sums.items()}


def switch_offs(model: nn.Module, loader: DataLoader) -> dict[str, float]:
    """Test mIoU as trained, with each path zeroed and with each CRP off, one at a time."""
    def miou() -> float:
        return 100 * evaluate(model, loader, model.num_classes).miou

    result = {"as trained": miou()}
    for i, name in paths(model):
        with path_zeroed(model, i):
            result[f"path {name} off"] = miou()
    for (_, block), name in zip(crps(model), block_names(model)):
        with switched_off([block]):
            result[f"CRP of {name}'s block off"] = miou()
    return result


def probe(config: TrainConfig, folder: Path, batches: list) -> dict[str, float]:
    """One variant and seed: trained (or reused), switched off part by part, its gradients."""
    data = SegmentationDataset(make_source(config, config.test_split), config.num_classes,
                               eval_transform())
    loader = DataLoader(data, batch_size=config.batch_size, collate_fn=pad_collate)
    initial = make_model(config).eval()
    result = {f"grad {k}, start": v for k, v in gradient_norms(initial, batches).items()}
    result |= {f"{k}, start": v for k, v in inside_blocks(initial, loader).items()}
    model = train(config, folder, resume=resumable(folder, config), progress=False).model.eval()
    result |= switch_offs(model, loader)
    result |= {f"grad {k}, end": v for k, v in gradient_norms(model, batches).items()}
    result |= {f"{k}, end": v for k, v in inside_blocks(model, loader).items()}
    return result


def measured(config: TrainConfig, folder: Path, batches: list) -> dict[str, float]:
    """:func:`probe`'s result, kept beside the run (``probe.json``) and read back while the run's
    checkpoint is the one it measured: a re-run that adds variants re-measures nothing."""
    kept = folder / "probe.json"
    checkpoint = folder / "last.pt"
    if kept.exists() and checkpoint.exists():
        record = json.loads(kept.read_text())
        if record["checkpoint_mtime_ns"] == checkpoint.stat().st_mtime_ns:
            return record["result"]
    result = probe(config, folder, batches)
    write_text_atomic(kept, json.dumps({"checkpoint_mtime_ns": checkpoint.stat().st_mtime_ns,
                                        "result": result}))
    return result


def write_json(path: Path, command: str, results: dict[str, list[dict[str, float]]]) -> None:
    """Every variant's per-seed numbers, which the tables and the reading quote (the layout of
    benchmarks/probes.py's records)."""
    write_text_atomic(path, json.dumps({"command": command, "results": results}, indent=1)
                      + "\n")


def mean(results: list[dict[str, float]], key: str) -> float:
    """The mean over seeds; NaN where the variant has no such part (a path it does not take)."""
    return statistics.fmean(r.get(key, math.nan) for r in results)


def show(value: float, spec: str, unit: str = "") -> str:
    """``value`` formatted, or "-" for a part the variant does not have."""
    return "-" if math.isnan(value) else f"{value:{spec}}{unit}"


def spread(results: list[dict[str, float]], key: str) -> str:
    """``mean`` over seeds, with the standard deviation once there are several."""
    values = [r[key] for r in results]
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{statistics.fmean(values):.1f} ± {statistics.stdev(values):.1f}"


def report(results: dict[str, list[dict[str, float]]], base: TrainConfig, command: str) -> str:
    drops = [f"path {s} off" for s in STAGES] + [f"CRP of {s}'s block off" for s in STAGES]
    switched = markdown_table(
        ["variant", "seeds", "test mIoU", *(f"drop, {d}" for d in drops)],
        [[name, len(rs), spread(rs, "as trained"),
          *(show(mean(rs, 'as trained') - mean(rs, d), ".1f") for d in drops)]
         for name, rs in results.items()])
    grads = markdown_table(
        ["variant", "when", *(f"path {s}" for s in STAGES), *(f"{s} weights" for s in STAGES)],
        [[name, when, *(show(mean(rs, f'grad path {s}, {when}'), ".2g") for s in STAGES),
          *(show(mean(rs, f'grad {s}, {when}'), ".2g") for s in STAGES)]
         for name, rs in results.items() for when in ("start", "end")])
    blocks = markdown_table(
        ["variant", "when", *(f"live, {s}'s block" for s in reversed(STAGES)),
         *(f"cascade/backbone, {s}'s block" for s in reversed(STAGES[:3]))],
        [[name, when,
          *(show(100 * mean(rs, f'live {s}, {when}'), ".1f", "%") for s in reversed(STAGES)),
          *(show(mean(rs, f'cascade/backbone {s}, {when}'), ".2f") for s in reversed(STAGES[:3]))]
         for name, rs in results.items() for when in ("start", "end")])
    seeds = {name: sorted({int(r['seed']) for r in rs}) for name, rs in results.items()}
    return (
        f"# RefineNet's paths, switched off one at a time\n\n{made_by(command)} Preset "
        f"`cpu-probe` ({base.dataset} {base.data_options}, {base.backbone} pretrained on "
        f"{base.pretrained_backbone}, decoder {base.model_options}, batch {base.batch_size}, "
        f"{base.optimizer} lr {base.lr:g}, {base.warmup_steps}-step warm-up), RefineNet "
        f"4-cascade; seeds {seeds}; test split. *Path off*: the adapted feature of that "
        f"backbone stage replaced by zeros before the cascade. *CRP off*: that block's chain "
        f"removed, so it passes relu(x) on. A drop is the mean test mIoU as trained minus the "
        f"mean with the part off.\n\n{switched}\n\n"
        f"Gradient norms, mean over the first {GRADIENT_BATCHES} training batches (no "
        f"augmentation), in training mode: at each path's adapted feature, and over each "
        f"backbone stage's weights; *start* is the initial model, *end* the trained one.\n\n"
        f"{grads}\n\nInside the blocks, on the test split: *live* is the share of CRP's input "
        f"above zero, what CRP's first ReLU lets through; *cascade/backbone* is the norm of the "
        f"previous block's term in the block's fusion over the norm of its backbone path's "
        f"term.\n\n{blocks}\n")


def write_keeping_verdict(path: Path, text: str) -> None:
    """Write the tables to ``path``, keeping the hand-written part of the file there (from
    :data:`VERDICT` on), which reads them: a re-run updates the tables, not the reading."""
    old = path.read_text() if path.exists() else ""
    kept = old[old.index(VERDICT):] if VERDICT in old else ""
    path.write_text(text + ("\n" + kept if kept else ""))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "coarse_paths.md"))
    args = parser.parse_args(argv)
    base = PRESETS["cpu-probe"]
    base = resolve_classes(base, make_source(base, "train"))
    train_data = SegmentationDataset(make_source(base, "train"), base.num_classes,
                                     eval_transform())
    batches = list(islice(DataLoader(train_data, batch_size=base.batch_size,
                                     collate_fn=pad_collate), GRADIENT_BATCHES))
    command = "python benchmarks/coarse_paths.py " + " ".join(
        ["--seeds", *map(str, args.seeds), "--variants", *(f'"{v}"' for v in args.variants)])
    results: dict[str, list[dict[str, float]]] = {}
    for seed in args.seeds:  # seed by seed: a run cut short still has whole seeds
        for name in args.variants:
            options, changes = VARIANTS[name]
            entry = Entry("refinenet", tuple(options.items()))
            config = replace(with_model(base, entry.model, options), **changes, seed=seed)
            folder = run_dir(ROOT / "runs" / "coarse_paths" / f"steps{config.steps}", entry,
                             config.lr, seed)
            result = measured(config, folder, batches) | {"seed": seed}
            results.setdefault(name, []).append(result)
            print(f"{name}, seed {seed}: {result}", file=sys.stderr, flush=True)
            text = report(results, base, command)  # after every run: what is done so far
            write_keeping_verdict(Path(args.out), text)
            write_json(Path(args.out).with_suffix(".json"), command, results)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
