"""Speed of RefineNet and its baselines, side by side in one run (issue 5).

Three tables, each written as markdown with the machine, versions and command:

- ``latency`` (the CPU default): inference at 512x512 (batch 1) in NCHW and in channels_last with
  batch norm folded, achieved GFLOP/s and its share of the machine's convolution ceiling measured
  in the same run, peak memory, and a training step at 256x256 (batch 2). Where the CPU computes
  bfloat16 natively, a second table puts bf16 next to the optimized fp32 model: inference on a
  bf16 copy of the model (``rnlib.runtime.BF16Inference``, as ``rnlib eval``, ``bench`` and
  ``export`` run ``--amp`` on the CPU) and the training step under autocast (float32 master
  weights, as the Trainer trains). Why a copy for inference: autocast casts around every
  convolution and keeps the element-wise work (sums, resizes, pooling) in float32, while a bf16
  model halves the bytes of all of it. In one interleaved run on a loaded machine (1 thread,
  384x384, batch norm folded, channels_last) autocast took 0.68x fp32's time for LW-RefineNet-50
  and 0.54x for FCN-8s-50, the bf16 copy 0.58x and 0.27x, with the same largest logit
  difference (1.8e-2 and 1.4e-2 of the largest logit).
- ``throughput`` (the CUDA default): images per second for inference and training at 512x512,
  fp32 against automatic mixed precision (bf16 where supported, else fp16 with a gradient
  scaler), channels_last and ``cudnn.benchmark``; ``--compile`` adds torch.compile'd training.
- ``recipe``: what each of the Trainer's speed choices is worth for the CPU preset's RefineNet
  (memory format, optimizer implementation), timed through ``rnlib.train.Trainer`` itself.

    .venv/bin/python benchmarks/speed.py                          # -> benchmarks/cpu_speed.md
    .venv/bin/python benchmarks/speed.py --mode recipe            # -> benchmarks/cpu_recipe.md
    .venv/bin/python benchmarks/speed.py --device cuda --compile  # -> benchmarks/cuda_speed.md
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

import rnlib
from rnlib import bench
from rnlib.deploy import fuse_batchnorm
from rnlib.runtime import BF16Inference, native_bf16
from rnlib.tables import command_line, made_by, markdown_table

MODELS = {  # row name: (registry name, backbone)
    "RefineNet-101": ("refinenet", "resnet101"),
    "RefineNet-50": ("refinenet", "resnet50"),
    "LW-RefineNet-50": ("refinenet-lw", "resnet50"),
    "FCN-8s-50": ("fcn8s", "resnet50"),
    "Dilated-OS8-50": ("dilated-os8", "resnet50"),
    "DeepLab-OS8-50": ("deeplab-os8", "resnet50"),
    "tv fcn_resnet50": ("tv-fcn", "resnet50"),
    "tv deeplabv3_resnet50": ("tv-deeplabv3", "resnet50"),
}
GPU_MODELS = ["RefineNet-101", "LW-RefineNet-50", "FCN-8s-50", "DeepLab-OS8-50"]  # issue 5


def _build(name: str, device: str) -> torch.nn.Module:
    model_name, backbone = MODELS[name]
    return rnlib.build_model(model_name, num_classes=21, backbone=backbone).to(device)


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# The authors' released code measured on this kind of machine against torchvision's
# fcn_resnet50 in the same run (plain eager models, best memory format; docs/design.md)
AUTHORS = {"RefineNet-101": 1.84, "LW-RefineNet-50": 0.40}


def latency_table(args) -> tuple[str, str]:
    """Inference on equal terms: plain models (as ``build_model`` gives them, each in its
    faster memory format) against plain torchvision fcn_resnet50, and optimized ones
    (channels_last, batch norm folded) against the optimized fcn_resnet50, interleaved round by
    round; then memory and a training step per model."""
    args.size = args.size or 512
    size, train_size = (args.size, args.size), (args.size // 2, args.size // 2)
    bf16 = _native_bf16(args.device)
    ceiling = bench.conv_ceiling(args.device, channels_last=True)
    plain = {name: _build(name, args.device).eval() for name in args.models}
    folded = {name: fuse_batchnorm(model) for name, model in plain.items()}
    variants = {(name, kind): (model, last) for name in args.models
                for kind, model, last in [("nchw", plain[name], False),
                                          ("last", plain[name], True),
                                          ("optimized", folded[name], True)]
                + ([("bf16", BF16Inference(folded[name]), True)] if bf16 else [])}
    times = {key: [] for key in variants}
    for round_ in range(args.repeats):  # interleaved: a shared machine's drift hits all alike
        for key, (model, last) in variants.items():
            times[key].append(bench.measure_latency(model, size, repeats=1, warmup=1,
                                                    channels_last=last))
        _log(f"round {round_ + 1} of {args.repeats}")
    ceiling = max(ceiling, bench.conv_ceiling(args.device, channels_last=True))  # after warm-up
    results = {}
    for name in args.models:
        median = {kind: statistics.median(times[key]) for key in variants if key[0] == name
                  for kind in key[1:]}
        results[name] = dict(median, best=min(median["nchw"], median["last"]),
                             flops=bench.count_flops(plain[name], size),
                             params=bench.count_parameters(plain[name]),
                             memory=bench.peak_memory(folded[name], size, channels_last=True),
                             gap=_logit_gap(folded[name], size) if bf16 else None)
        del folded[name]
        steps = bench.alternate_train_steps(plain.pop(name), train_size, 2,
                                            dtypes=[None, torch.bfloat16] if bf16 else [None],
                                            repeats=args.repeats)
        results[name].update({"step" if dtype is None else "step_bf16": ms
                              for dtype, ms in steps.items()})
    reference = "tv fcn_resnet50" if "tv fcn_resnet50" in results else args.models[0]
    ref = results[reference]
    header = ["model", "params (M)", f"GMACs@{args.size}", "plain NCHW (ms)",
              "plain channels_last (ms)", f"plain: vs {reference}",
              f"authors' code: vs {reference}", "optimized (ms)", f"optimized: vs {reference}",
              "GFLOP/s", "share of ceiling", "peak mem (MiB)",
              f"train step {train_size[0]}x{train_size[1]} b2 (ms)"]
    rows = []
    for name, r in results.items():
        rate = r["flops"] / (r["optimized"] / 1e3) / 1e9
        rows.append([name, f"{r['params'] / 1e6:.2f}", f"{r['flops'] / 2e9:.1f}",
                     f"{r['nchw']:.0f}", f"{r['last']:.0f}", f"{r['best'] / ref['best']:.2f}x",
                     f"{AUTHORS[name]:.2f}x" if name in AUTHORS else "-",
                     f"{r['optimized']:.0f}", f"{r['optimized'] / ref['optimized']:.2f}x",
                     f"{rate:.0f}", f"{100 * rate / ceiling:.0f}%", f"{r['memory']:.0f}",
                     f"{r['step']:.0f}"])
    tables = markdown_table(header, rows) + "\n\n" + (_bf16_table(results, train_size) if bf16 else
        "bfloat16: not measured, this CPU does not compute it natively (rnlib.runtime.native_bf16)")
    note = (f"Random weights, 21 classes. Inference at {args.size}x{args.size}, batch 1, under "
            f"torch.inference_mode; the model variants interleaved round by round, medians. "
            f"Plain: the model as build_model gives it, in NCHW and in channels_last; its ratio "
            f"takes each model's faster format. Optimized: channels_last with batch norm folded "
            f"into the convolutions (rnlib.deploy.fuse_batchnorm), against the same for "
            f"{reference}. The authors' ratios: their released PyTorch code on this kind of "
            f"machine, plain, best format (docs/design.md). GFLOP/s and the share of the "
            f"convolution ceiling (3x3 conv 256->256, 56x56, batch 8, channels_last, fastest of "
            f"10, measured in the same run: {ceiling:.0f} GFLOP/s) are of the optimized model. "
            f"bf16 inference: a bfloat16 copy of the optimized model (rnlib.runtime.BF16Inference: "
            f"weights and activations in bf16, float32 image in and logits out; autocast would "
            f"keep the sums, resizes and pooling in float32), interleaved with the others; its "
            f"logits' largest difference from the optimized fp32 model's on one random image, "
            f"over the largest fp32 logit. Training steps (SGD, fp32 and bf16 autocast with "
            f"float32 master weights, channels_last) alternate round by round after a warm-up "
            f"step each.")
    if args.checkpoint:
        note += " " + _miou_change(args.checkpoint)
    return tables, note


def _native_bf16(device: str) -> bool:
    return torch.device(device).type == "cpu" and native_bf16()


def _logit_gap(model: torch.nn.Module, size: tuple[int, int]) -> float:
    """Largest |bf16 - fp32| logit over the largest |fp32| logit, one random image: the bf16
    copy of ``model`` against ``model``."""
    x = torch.randn(1, 3, *size, device=next(model.parameters()).device).contiguous(
        memory_format=torch.channels_last)
    with torch.inference_mode():
        fp32 = model(x).float()
        low = BF16Inference(model)(x)
    return ((low - fp32).abs().max() / fp32.abs().max()).item()


def _bf16_table(results: dict[str, dict], train_size: tuple[int, int]) -> str:
    side = f"{train_size[0]}x{train_size[1]} b2"
    header = ["model", "optimized fp32 (ms)", "bf16 (ms)", "bf16 / fp32",
              "max difference / max logit", f"train step {side} fp32 (ms)",
              "train step bf16 (ms)", "bf16 / fp32"]
    rows = [[name, f"{r['optimized']:.0f}", f"{r['bf16']:.0f}", f"{r['bf16'] / r['optimized']:.2f}",
             f"{r['gap']:.1e}", f"{r['step']:.0f}", f"{r['step_bf16']:.0f}",
             f"{r['step_bf16'] / r['step']:.2f}"] for name, r in results.items()]
    return markdown_table(header, rows)


def _miou_change(checkpoint: str) -> str:
    """The test-split mIoU of a trained checkpoint in fp32 and in bf16 (``rnlib eval --amp``:
    a bf16 copy of the model)."""
    from rnlib.checkpoint import load_checkpoint
    from rnlib.config import TrainConfig
    from rnlib.runs import evaluate_checkpoint

    config = TrainConfig.from_dict(load_checkpoint(checkpoint)["config"])
    miou = {amp: evaluate_checkpoint(checkpoint, config=replace(config, amp=amp, device="cpu"),
                                     split=config.test_split, progress=False)[0].miou
            for amp in ("off", "bf16")}
    return (f"A trained model ({checkpoint}: {config.model}, {config.backbone}, "
            f"{config.model_options}, trained by `rnlib train --preset cpu-quick`), evaluated on "
            f"the {config.test_split} split: mIoU {100 * miou['off']:.2f} in fp32, "
            f"{100 * miou['bf16']:.2f} in bf16 (change {100 * (miou['bf16'] - miou['off']):+.2f} "
            f"points).")


def _amp_dtype(device: str) -> torch.dtype:
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16


def throughput_table(args) -> tuple[str, str]:
    """Images per second, fp32 against AMP, both in channels_last (issue 5's GPU table)."""
    torch.backends.cudnn.benchmark = True  # fixed input sizes: let cuDNN pick its fastest kernels
    amp = _amp_dtype(args.device)
    args.size = args.size or 512
    size, batch = (args.size, args.size), args.batch
    header = ["model", "infer fp32 (img/s)", "infer AMP (img/s)", "train fp32 (img/s)",
              "train AMP (img/s)", "train AMP / fp32"]
    if args.compile:
        header += ["train AMP + compile (img/s)", "compiled / fp32"]
    rows = []
    for name in args.models:
        started = time.perf_counter()
        model = _build(name, args.device)
        infer, train = {}, {}
        for label, dtype in (("fp32", None), ("amp", amp)):
            with torch.autocast(torch.device(args.device).type, dtype=dtype or torch.float32,
                                enabled=dtype is not None):
                infer[label] = batch * 1e3 / bench.measure_latency(
                    model, size, batch, repeats=args.repeats, channels_last=True)
            train[label] = batch * 1e3 / bench.measure_train_step(
                model, size, batch, repeats=args.repeats, channels_last=True, amp_dtype=dtype)
        cells = [name, f"{infer['fp32']:.1f}", f"{infer['amp']:.1f}", f"{train['fp32']:.1f}",
                 f"{train['amp']:.1f}", f"{train['amp'] / train['fp32']:.2f}x"]
        if args.compile:
            compiled = torch.compile(model)
            rate = batch * 1e3 / bench.measure_train_step(
                compiled, size, batch, repeats=args.repeats, warmup=3, channels_last=True,
                amp_dtype=amp)
            cells += [f"{rate:.1f}", f"{rate / train['fp32']:.2f}x"]
        rows.append(cells)
        del model
        if args.device.startswith("cuda"):
            torch.cuda.empty_cache()
        _log(f"{name}: {time.perf_counter() - started:.0f} s")
    tf32 = torch.backends.cudnn.allow_tf32 if args.device.startswith("cuda") else False
    note = (f"Random weights, 21 classes; {args.size}x{args.size}, batch {batch}, channels_last, "
            f"cudnn.benchmark on; AMP is "
            f"{str(amp).replace('torch.', '')}"
            f"{' with a gradient scaler' if amp == torch.float16 else ''}; fp32 convolutions "
            f"{'may use TF32 (PyTorch default)' if tf32 else 'in full fp32'}; training is one SGD "
            f"step (forward, cross-entropy, backward, update).")
    return markdown_table(header, rows), note


def _recipe_step(preset, model_name: str, data, channels_last: bool = True,
                 optimizer: str = "adamw", fused: bool = True, amp: str = "off") -> float:
    """Seconds per training step of ``model_name`` on ``preset``, through the Trainer."""
    from rnlib.config import with_model
    from rnlib.runs import make_model
    from rnlib.train import Trainer

    config = replace(with_model(preset, model_name), channels_last=channels_last,
                     optimizer=optimizer, amp=amp)
    with tempfile.TemporaryDirectory() as out:
        trainer = Trainer(make_model(config), data, None, config, out, progress=False)
        if optimizer == "adamw" and not fused:  # the Trainer's optimizer, unfused
            groups = [{"params": g["params"], "lr": g["lr"]}
                      for g in trainer.optimizer.param_groups]
            trainer.optimizer = torch.optim.AdamW(
                groups, lr=config.lr, weight_decay=config.weight_decay, foreach=True)
        return trainer.seconds_per_step(steps=5)


def recipe_table(args) -> tuple[str, str]:
    """The CPU preset's training step through the Trainer: what each speed choice is worth
    for RefineNet, then RefineNet against FCN-8s in GFLOP/s and share of the ceiling."""
    from rnlib.config import PRESETS, with_model
    from rnlib.data import SegmentationDataset, load_source, train_transform
    from rnlib.runs import make_model

    preset = replace(PRESETS["cpu-quick"], num_classes=5, device=args.device)
    preset = replace(preset, crop=args.size or preset.crop)
    variants = {  # name: (model, channels_last, optimizer, fused, amp)
        "NCHW, AdamW for-each": ("refinenet", False, "adamw", False, "off"),
        "channels_last, AdamW for-each": ("refinenet", True, "adamw", False, "off"),
        "channels_last, AdamW fused (rnlib)": ("refinenet", True, "adamw", True, "off"),
        "channels_last, SGD momentum": ("refinenet", True, "sgd", False, "off"),
        "channels_last, AdamW fused, bf16 autocast": ("refinenet", True, "adamw", True, "bf16"),
        "FCN-8s, rnlib's recipe": ("fcn8s", True, "adamw", True, "off"),
    }
    times = {name: [] for name in variants}
    ceiling = bench.conv_ceiling(args.device, channels_last=True)
    with tempfile.TemporaryDirectory() as root:  # two batches of Shapes at the preset's size
        data = SegmentationDataset(
            load_source("shapes", "train", count=2 * preset.batch_size, size=preset.crop,
                        root=root),
            preset.num_classes, train_transform(preset.crop, scale=tuple(preset.scale)))
        for _ in range(args.repeats):  # interleaved: a shared machine's drifts hit all alike
            for name, variant in variants.items():
                times[name].append(_recipe_step(preset, variant[0], data, *variant[1:]))
    ceiling = max(ceiling, bench.conv_ceiling(args.device, channels_last=True))
    reference = statistics.median(times["NCHW, AdamW for-each"])
    steps = [[name, f"{1e3 * ms:.0f}", f"{reference / ms:.2f}x"]
             for name, ms in ((n, statistics.median(v)) for n, v in times.items())
             if variants[name][0] == "refinenet"]
    rates = []
    for name, key in (("RefineNet", "channels_last, AdamW fused (rnlib)"),
                      ("FCN-8s", "FCN-8s, rnlib's recipe")):
        model = make_model(with_model(preset, variants[key][0]))
        flops = bench.count_flops(model, (preset.crop, preset.crop), preset.batch_size,
                                  train=True)
        seconds = statistics.median(times[key])
        rate = flops / seconds / 1e9
        rates.append([name, f"{1e3 * seconds:.0f}", f"{flops / 1e9:.1f}", f"{rate:.0f}",
                      f"{100 * rate / ceiling:.0f}%"])
    note = (f"Preset cpu-quick: {preset.backbone} (pretrained: {preset.pretrained_backbone}), "
            f"RefineNet {preset.model_options}, batch {preset.batch_size} at "
            f"{preset.crop}x{preset.crop}; each variant is 5 steps through rnlib.train.Trainer "
            f"after a warm-up step, repeated {args.repeats} times interleaved. FLOPs counted by "
            f"torch.utils.flop_counter over a forward and backward pass; convolution ceiling "
            f"measured in the same run: {ceiling:.0f} GFLOP/s.")
    tables = (markdown_table(["training step", "ms (median)", "speed-up"], steps) + "\n\n"
              + markdown_table(["model (rnlib's recipe)", "ms per step",
                                "GFLOP per step (forward + backward)", "GFLOP/s",
                                "share of ceiling"], rates))
    return tables, note


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--mode", choices=["latency", "throughput", "recipe"],
                        help="default: latency on the CPU, throughput on CUDA")
    parser.add_argument("--models", nargs="+", choices=list(MODELS), metavar="MODEL",
                        help=f"latency and throughput rows (default: all for latency, "
                             f"{GPU_MODELS} for throughput); recipe uses the CPU preset")
    parser.add_argument("--size", type=int,
                        help="image side (default: 512; recipe: the preset's crop)")
    parser.add_argument("--batch", type=int, default=8, help="throughput: images per batch")
    parser.add_argument("--compile", action="store_true", help="throughput: add torch.compile")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--checkpoint", help="latency: also a trained checkpoint's test mIoU "
                                             "in fp32 and in bf16")
    parser.add_argument("--out", help="default: benchmarks/{device}_{speed,recipe}.md")
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error(f"--repeats must be 1 or more, got {args.repeats}: each figure is a median")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("--device cuda: this machine has no CUDA GPU (torch.cuda.is_available() "
                     "is False); run it where there is one, or use --device cpu")
    args.mode = args.mode or ("throughput" if args.device.startswith("cuda") else "latency")
    args.models = args.models or (GPU_MODELS if args.mode == "throughput" else list(MODELS))
    table = {"latency": latency_table, "throughput": throughput_table, "recipe": recipe_table}
    load = os.getloadavg()[0]
    tables, note = table[args.mode](args)
    kind = torch.device(args.device).type
    command = command_line("python benchmarks/speed.py")
    text = (f"# {args.mode.capitalize()} on {kind.upper()}\n\n{made_by(command)} Load average "
            f"(1 min, shared machine) {load:.1f} at the start, {os.getloadavg()[0]:.1f} at the "
            f"end. Medians of {args.repeats} runs.\n{note}\n\n{tables}\n")
    print(text)
    name = f"{kind}_{'recipe' if args.mode == 'recipe' else 'speed'}.md"
    out = Path(args.out or Path(__file__).parent / name)
    out.write_text(text)


if __name__ == "__main__":
    main()
