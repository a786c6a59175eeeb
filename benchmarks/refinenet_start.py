"""Why RefineNet's decoder learns more slowly than FCN-8s's at the start (issue 9, item 3).

Trains each variant of the course preset's RefineNet, and FCN-8s for reference, for the same
number of steps from the same pretrained backbone and seed, and tabulates the training loss of
the first steps (where the loss spiked at step 2), the largest loss of the first 20 steps, the
mean loss of the last 20 and the validation mIoU at the end. Every variant starts from the
preset without its warm-up (the fix this table led to) and changes one thing. Every run is
budgeted in steps, so the table does not depend on the machine's speed.

    .venv/bin/python benchmarks/refinenet_start.py            # -> benchmarks/refinenet_start.md
    .venv/bin/python benchmarks/refinenet_start.py --steps 20 --variants baseline fcn8s
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from rnlib.config import PRESETS, with_model
from rnlib.runs import train
from rnlib.tables import command_line, made_by, markdown_table

VARIANTS = {  # name: (model, options, config changes)
    "before: AdamW 1e-3, no warm-up": ("refinenet", {}, {}),
    "SGD 1e-2": ("refinenet", {}, {"optimizer": "sgd", "lr": 1e-2}),
    "AdamW 3e-4": ("refinenet", {}, {"lr": 3e-4}),
    "AdamW 1e-4": ("refinenet", {}, {"lr": 1e-4}),
    "no dropout": ("refinenet", {"feature_dropout": 0.0, "classifier_dropout": 0.0}, {}),
    "paper text: 2 CRP blocks, 1 output RCU": ("refinenet", {"crp_blocks": 2, "out_rcus": 1}, {}),
    "256-wide decoder": ("refinenet", {"widths": (256, 256)}, {}),
    "residual branches start at zero": ("refinenet", {"residual_init": "zero"}, {}),
    "AdamW 1e-3, 50-step warm-up": ("refinenet", {}, {"warmup_steps": 50}),
    "AdamW 3e-4, 50-step warm-up": ("refinenet", {}, {"lr": 3e-4, "warmup_steps": 50}),
    "256-wide decoder, AdamW 3e-4": ("refinenet", {"widths": (256, 256)}, {"lr": 3e-4}),
    "256-wide decoder, 50-step warm-up": ("refinenet", {"widths": (256, 256)},
                                          {"warmup_steps": 50}),
    "FCN-8s": ("fcn8s", {}, {}),
    "FCN-8s, AdamW 3e-4": ("fcn8s", {}, {"lr": 3e-4}),
    "FCN-8s, 50-step warm-up": ("fcn8s", {}, {"warmup_steps": 50}),
}


def run(name: str, steps: int, root: Path) -> dict:
    model, options, changes = VARIANTS[name]
    base = replace(PRESETS["cpu-probe"], steps=steps, eval_every=0, warmup_steps=0, **changes)
    config = with_model(base, model, options)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=root) as out:
        trainer = train(config, out, progress=False)
    losses = trainer.history["step_loss"]
    return {"losses": losses, "miou": trainer.history["val_miou"][-1],
            "seconds": time.perf_counter() - started}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=250)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), metavar="NAME",
                        help="names of VARIANTS, or a unique start of one")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name(
        "refinenet_start.md"))
    args = parser.parse_args()
    names = [next(v for v in VARIANTS if v.startswith(n)) for n in args.variants]
    root = Path(tempfile.mkdtemp())
    results = {}
    for name in names:
        results[name] = run(name, args.steps, root)
        print(f"{name}: {results[name]['seconds']:.0f} s", file=sys.stderr, flush=True)
    lines = []
    for name, r in results.items():
        loss = r["losses"]
        first = ", ".join(f"{loss[i - 1]:.2f}" for i in (1, 2, 3, 5, 10) if i <= len(loss))
        lines.append([name, first, f"{max(loss[:20]):.2f}", f"{statistics.fmean(loss[-20:]):.3f}",
                      f"{100 * r['miou']:.1f}"])
    table = markdown_table(["variant", "loss at steps 1, 2, 3, 5, 10", "max loss, steps 1-20",
                            "mean loss, last 20 steps", f"val mIoU after {args.steps} steps"],
                           lines)
    preset = PRESETS["cpu-probe"]
    command = command_line("python benchmarks/refinenet_start.py")
    text = (f"# RefineNet's start, variant by variant\n\n{made_by(command)} The cpu-probe preset: "
            f"{preset.backbone} pretrained on {preset.pretrained_backbone}, decoder "
            f"{preset.model_options}, Shapes {preset.data_options}, batch {preset.batch_size}, "
            f"{preset.optimizer} lr {preset.lr:g} without warm-up, with the poly schedule over "
            f"the run, seed {preset.seed}; {args.steps} steps each.\n\n{table}\n")
    print(text)
    args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
