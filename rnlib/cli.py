"""The command line: ``rnlib train | eval | compare | bench | data | models | grade | export |
convert`` (also ``python -m rnlib``). Each subcommand mirrors a module and has ``--help``.

``train``, ``eval`` and ``compare`` build their TrainConfig in one way (:func:`make_config`): a
preset (or, for ``eval``, the checkpoint's own config), then ``--config FILE`` (TOML or YAML),
then the flags. The config is checked whole before any data is read or any step is trained.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main", "build_parser"]

EXIT_INTERRUPTED = 130  # the shell's code for a run stopped by Ctrl-C


def parse_value(text: str) -> object:
    """A command-line value: a Python literal (``3``, ``1e-3``, ``(64, 64)``, ``True``),
    ``true``/``false``/``none``, a comma-separated list (``64,64``), else the text itself."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        pass
    lowered = text.lower()
    if lowered in ("true", "false", "none", "null"):
        return {"true": True, "false": False}.get(lowered)
    if "," in text:
        return tuple(parse_value(part.strip()) for part in text.split(","))
    return text


def _pairs(items: Sequence[str] | None, flag: str) -> dict[str, object]:
    pairs = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"{flag} takes KEY=VALUE, got {item!r} (e.g. {flag} widths=64,64)")
        pairs[key.strip()] = parse_value(value.strip())
    return pairs


def _config(args: argparse.Namespace, base=None):
    """The run's config: the preset (or ``base``), the file, then every flag given."""
    from .config import make_config

    data_options = {"count": args.count} if args.count else {}
    flags = {
        "model": getattr(args, "model", None), "backbone": args.backbone,
        "dataset": args.dataset, "num_classes": args.num_classes,
        "pretrained_backbone": args.pretrained_backbone, "time_budget_s": args.time_budget,
        "epochs": args.epochs, "steps": args.steps, "lr": args.lr, "batch_size": args.batch_size,
        "seed": args.seed, "device": args.device, "compile": args.compile, "amp": args.amp,
        "num_workers": args.workers, "eval_every_steps": args.eval_every_steps,
        "save_every_steps": args.save_every_steps,
        "save_every_minutes": args.save_every_minutes,
    }
    flags.update(_pairs(args.set, "--set"))
    if data_options:
        flags["data_options"] = {**flags.get("data_options", {}), **data_options}
    return make_config(base or args.preset, file=args.config, data_dir=args.data_dir,
                       model_options=_pairs(args.model_option, "--model-option"), **flags)


def _train(args: argparse.Namespace) -> None:
    from .config import dump_config
    from .runs import train

    config = _config(args)
    if args.print_config:
        print(dump_config(config), end="")
        return
    trainer = train(config, args.out, resume=args.resume)
    if trainer.runtime.is_main:
        h = trainer.history
        print(f"trained {config.model} for {trainer.step} steps; validation mIoU "
              f"{100 * h['val_miou'][-1]:.1f}, boundary F {100 * h['val_boundary_f'][-1]:.1f}; "
              f"checkpoint {Path(args.out) / 'last.pt'}")


def _eval(args: argparse.Namespace) -> None:
    from .checkpoint import load_checkpoint
    from .config import TrainConfig
    from .runs import evaluate_checkpoint

    base = TrainConfig.from_dict(load_checkpoint(args.checkpoint)["config"])
    config = _config(args, base=base)
    result, classes = evaluate_checkpoint(args.checkpoint, config=config, split=args.split,
                                          scales=args.scales, flip=args.flip)
    print(result.summary())
    print(_per_class(classes, result.iou))


def _per_class(classes: Sequence[str], iou: Sequence[float]) -> str:
    width = max(len(c) for c in classes)
    return "IoU per class:\n" + "\n".join(f"  {c:{width}s} {100 * v:5.1f}"
                                          for c, v in zip(classes, iou))


def _compare(args: argparse.Namespace) -> None:
    import json

    from . import viz
    from .compare import ABLATIONS, BASELINES, compare, format_rows, rows_as_dicts

    config = _config(args)
    entries = {"baselines": BASELINES, "ablations": ABLATIONS,
               "all": {**BASELINES, **ABLATIONS}}[args.contenders]
    name = args.name or {"baselines": "comparison", "ablations": "ablation"}.get(
        args.contenders, "comparison-all")
    out = Path(args.out)
    for folder, option in ((out, "--out"), (args.keep and Path(args.keep), "--keep")):
        if folder:  # a probe: fail now, not after minutes of training, and overwrite nothing
            _write(folder / ".write-test", "", announce=False, option=option)
            (folder / ".write-test").unlink()
    rows = compare(config, entries, Path(args.runs) / name, seeds=args.seeds,
                   lr_grid=args.lr_grid or (), split=args.split, resume=args.resume,
                   kept=args.keep)
    command = "rnlib " + " ".join(sys.argv[1:]) if sys.argv[1:2] == ["compare"] else "rnlib compare"
    text = (f"# {name} ({args.preset})\n\nMade by `{command}` on {_machine()}.\n\n"
            f"{format_rows(rows, config)}")
    print(text)
    _write(out / f"{name}.md", text)
    _write(out / f"{name}.json", json.dumps(rows_as_dicts(rows), indent=1))
    viz.plot_comparison(rows, f"{name}: {args.preset}").savefig(out / f"{name}.png", dpi=110)
    if any(len(c["step"]) > 1 for r in rows for c in r.curves):  # --eval-every-steps: curves
        viz.plot_curves(rows, f"{name}: validation mIoU").savefig(out / f"{name}-curves.png",
                                                                 dpi=110)


def _bench(args: argparse.Namespace) -> None:
    import torch

    from . import bench, build_model
    from .runtime import amp_dtype, choose_device

    costs = []
    device = choose_device(args.device)
    amp = amp_dtype(args.amp, device)
    for name in args.models:
        model = build_model(name, num_classes=args.num_classes, backbone=args.backbone,
                            **_pairs(args.model_option, "--model-option")).to(device)
        costs.append(bench.measure(name, model, args.size, batch=args.batch,
                                   latency=not args.no_latency, memory=not args.no_memory,
                                   channels_last=args.channels_last, repeats=args.repeats,
                                   amp_dtype=amp))
        print(f"measured {name}", file=sys.stderr)
    table = bench.format_table(costs, reference=args.reference)
    h, w = args.size
    title = (f"{args.backbone}, {args.num_classes} classes, input {h}x{w}, batch {args.batch}, "
             f"{device}, {'channels_last' if args.channels_last else 'NCHW'}, "
             f"{str(amp or torch.float32).removeprefix('torch.')}, "
             f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    text = f"{title}\n\n{table}\n"
    print(text)
    if args.out:
        _write(Path(args.out), text)


def _machine() -> str:
    import os
    import platform

    import torch

    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    return (f"{platform.machine()}, {os.cpu_count()} cores, {device}, torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads")


def _data(args: argparse.Namespace) -> None:
    from .data.sources import load_source

    options: dict = {"root": args.data_dir} if args.data_dir else {}
    if args.name == "shapes":
        options.update(count=args.count, size=args.size, seed=args.seed)
    elif args.name in ("voc", "pets"):
        options["download"] = args.download
    for split in args.splits:
        source = load_source(args.name, split, **options)
        classes = f"; classes: {', '.join(source.classes)}" if source.classes else ""
        print(f"{source.name}: {len(source)} samples{classes}")


def _models(args: argparse.Namespace) -> None:
    from .models import describe_models, model_options

    for name, doc in describe_models().items():
        print(f"{name:20s} {doc}")
        if args.options and model_options(name):
            print(" " * 21 + ", ".join(f"{k}={v!r}" for k, v in model_options(name).items()))


def _write(path: Path, text: str, announce: bool = True, option: str = "--out") -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    except OSError as err:
        raise SystemExit(f"rnlib: cannot write {path}: {err.strerror}; "
                         f"choose another {option}") from err
    if announce:
        print(f"wrote {path}", file=sys.stderr)


def _amp_option(group, default: str | None = None) -> None:
    from .config import AMP_MODES

    group.add_argument("--amp", nargs="?", const="on", default=default, choices=AMP_MODES,
                       help="mixed precision (rnlib.runtime.amp_dtype); --amp alone: fp16 on "
                            "CUDA, bf16 on a CPU that computes it natively, refused on others")


def _run_options(p: argparse.ArgumentParser, *, model: bool) -> None:
    """The options of train, eval and compare: the config's source, data, model, budget."""
    from .config import PRESETS

    g = p.add_argument_group("configuration (a preset, then --config FILE, then these flags)")
    g.add_argument("--preset", choices=list(PRESETS), default="cpu-quick")
    g.add_argument("--config", metavar="FILE", help="a TOML or YAML file holding TrainConfig "
                                                    "fields (rnlib train --print-config)")
    g.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="any TrainConfig field, e.g. --set optimizer=sgd (repeatable)")
    g = p.add_argument_group("data")
    g.add_argument("--dataset", help="shapes, voc, pets, hf:NAME_OR_PATH or a folder with "
                                     "images/ and masks/ (default: the preset's)")
    g.add_argument("--num-classes", type=int, help="default: the dataset's own classes")
    g.add_argument("--data-dir", help="where datasets are cached (default: $RNLIB_DATA_DIR, "
                                      "else the checkout's data/)")
    g.add_argument("--count", type=int, help="Shapes: training images (val and test: 1/10)")
    g = p.add_argument_group("model")
    if model:
        g.add_argument("--model", help="a registry name (rnlib models); default: the preset's")
    g.add_argument("--backbone", help="resnet18 .. resnet152")
    g.add_argument("--pretrained-backbone", nargs="?", const="imagenet", metavar="WEIGHTS",
                   help="imagenet (torchvision's, a download; the default value), glyphs (the "
                        "course's, shipped), a state-dict file, or false")
    g.add_argument("--model-option", action="append", metavar="KEY=VALUE",
                   help="e.g. widths=64,64 crp_blocks=2 (repeatable; rnlib models --options)")
    g = p.add_argument_group("training")
    g.add_argument("--epochs", type=int, help="train for this many epochs")
    g.add_argument("--steps", type=int, help="train for this many optimizer steps")
    g.add_argument("--time-budget", type=float, metavar="SECONDS",
                   help="train for as many steps as fit in this time (machine-dependent)")
    g.add_argument("--lr", type=float)
    g.add_argument("--batch-size", type=int, help="the global batch (divided among processes "
                                                  "under torchrun)")
    g.add_argument("--seed", type=int)
    g.add_argument("--device", help="auto, cpu, cuda, cuda:1 (default auto: cuda when present)")
    _amp_option(g)
    g.add_argument("--compile", action="store_const", const=True,
                   help="torch.compile the training steps (worth it on a GPU)")
    g.add_argument("--workers", type=int, help="data-loading processes")
    g.add_argument("--eval-every-steps", type=int, help="evaluate every N steps (curves)")
    g.add_argument("--save-every-steps", type=int, help="checkpoint every N steps")
    g.add_argument("--save-every-minutes", type=float, help="checkpoint every N minutes")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rnlib",
        description="RefineNet and its baselines: train, evaluate, compare, benchmark, export.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("models", help="list the registered models")
    p.add_argument("--options", action="store_true", help="also each model's options")
    p.set_defaults(run=_models)

    p = sub.add_parser("train", help="train a model (presets: cpu-quick, gpu-quick, gpu)")
    _run_options(p, model=True)
    p.add_argument("--out", default="runs/train", help="folder for last.pt and history.json")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    p.add_argument("--print-config", action="store_true",
                   help="print the effective configuration as YAML and stop")
    p.set_defaults(run=_train)

    p = sub.add_parser("eval", help="evaluate a checkpoint: mIoU, pixel accuracy, boundary F")
    p.add_argument("checkpoint", help="a last.pt written by rnlib train (or rnlib convert)")
    _run_options(p, model=False)
    p.add_argument("--split", help="default: the run's validation split")
    p.add_argument("--scales", type=float, nargs="+", default=[1.0],
                   help="multi-scale inference, e.g. 0.75 1 1.25")
    p.add_argument("--flip", action="store_true", help="also average the flipped image")
    p.set_defaults(run=_eval)

    p = sub.add_parser("compare", help="RefineNet vs FCN-32s, FCN-8s, dilated OS8 (or ablations)")
    _run_options(p, model=False)
    p.add_argument("--contenders", choices=["baselines", "ablations", "all"],
                   default="baselines", help="RefineNet against its baselines, RefineNet taken "
                                             "apart (no CRP, no RCUs, 1-2 cascades), or both")
    p.add_argument("--seeds", type=int, nargs="+", help="train each model with each seed; "
                                                        "report mean and spread")
    p.add_argument("--lr-grid", type=float, nargs="+", metavar="LR",
                   help="the same learning rates for every model, chosen on validation")
    p.add_argument("--split", help="where results are measured (default: the test split)")
    p.add_argument("--out", default="benchmarks", help="where the table and plot go")
    p.add_argument("--name", help="file name of the results (default: comparison)")
    p.add_argument("--runs", default="runs", help="where the checkpoints go")
    p.add_argument("--resume", action="store_true",
                   help="continue interrupted runs of the same settings, reuse finished ones")
    p.add_argument("--keep", metavar="DIR",
                   help="also keep each finished run's record and metrics here (kilobytes, no "
                        "weights): with --resume they stand in for runs whose checkpoints are "
                        "gone")
    p.set_defaults(run=_compare)

    p = sub.add_parser("data", help="prepare (and with --download fetch) a dataset")
    p.add_argument("name", help="shapes, voc, pets, hf:NAME_OR_PATH or a folder")
    p.add_argument("--splits", nargs="+", default=["train", "val"])
    p.add_argument("--download", action="store_true", help="voc and pets: fetch if missing")
    p.add_argument("--count", type=int, default=2000, help="shapes: training images")
    p.add_argument("--size", type=int, default=128, help="shapes: image side")
    p.add_argument("--seed", type=int, default=0, help="shapes: the dataset's seed")
    p.add_argument("--data-dir", help="default: $RNLIB_DATA_DIR, else the checkout's data/")
    p.set_defaults(run=_data)

    p = sub.add_parser("bench", help="parameters, FLOPs/MACs, latency and peak memory of models")
    p.add_argument("--models", nargs="+", default=["refinenet", "refinenet-lw", "fcn8s",
                                                    "dilated-os8"], metavar="NAME")
    p.add_argument("--backbone", default="resnet50")
    p.add_argument("--num-classes", type=int, default=21)
    p.add_argument("--model-option", action="append", metavar="KEY=VALUE")
    p.add_argument("--size", type=int, nargs=2, default=[512, 512], metavar=("H", "W"))
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--channels-last", action="store_true")
    _amp_option(p, default="off")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--no-latency", action="store_true", help="only parameters and FLOPs")
    p.add_argument("--no-memory", action="store_true")
    p.add_argument("--reference", help="model whose latency the others are divided by")
    p.add_argument("--out", help="also write the table to this markdown file")
    p.set_defaults(run=_bench)

    from .convert import add_convert_command
    from .export import add_export_command
    from .grade import add_grade_command

    add_grade_command(sub)
    add_export_command(sub)
    add_convert_command(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    from .data import DataError
    from .train import TrainingInterrupted

    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except TrainingInterrupted as err:
        print(f"rnlib {args.command}: {err}", file=sys.stderr)
        raise SystemExit(EXIT_INTERRUPTED) from None
    except (ValueError, FileNotFoundError, OSError, FloatingPointError, DataError) as err:
        raise SystemExit(f"rnlib {args.command}: {err}") from err
