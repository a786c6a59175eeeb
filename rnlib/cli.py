"""The command line: ``rnlib train | eval | compare | bench | data | models`` (also
``python -m rnlib``). Each subcommand mirrors a module of the library and has ``--help``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main"]


def _bench(args: argparse.Namespace) -> None:
    import torch

    from . import bench, build_model

    costs = []
    for name in args.models:
        device = torch.device(args.device)
        model = build_model(name, num_classes=args.num_classes, backbone=args.backbone).to(device)
        costs.append(bench.measure(name, model, args.size, batch=args.batch,
                                   latency=not args.no_latency, memory=not args.no_memory,
                                   channels_last=args.channels_last, repeats=args.repeats))
        print(f"measured {name}", file=sys.stderr)
    table = bench.format_table(costs, reference=args.reference)
    h, w = args.size
    title = (f"{args.backbone}, {args.num_classes} classes, input {h}x{w}, batch {args.batch}, "
             f"{args.device}, {'channels_last' if args.channels_last else 'NCHW'}, "
             f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    text = f"{title}\n\n{table}\n"
    print(text)
    if args.out:
        _write(Path(args.out), text)


def _config(args: argparse.Namespace):
    """The preset, with every option the user gave on the command line on top."""
    from dataclasses import replace

    from .train import PRESETS

    config = PRESETS[args.preset]
    changes = {k: v for k, v in {
        "model": getattr(args, "model", None), "backbone": args.backbone,
        "time_budget_s": args.time_budget, "epochs": args.epochs, "lr": args.lr,
        "batch_size": args.batch_size, "seed": args.seed, "device": args.device,
        "compile": args.compile,
    }.items() if v is not None}
    if getattr(args, "model", None) and not args.model.startswith("refinenet"):
        changes["model_options"] = {}  # the presets' options (decoder widths) are RefineNet's
    if args.epochs is not None and args.time_budget is None:
        changes["time_budget_s"] = None  # --epochs alone means an epoch count, not a budget
    data_options = dict(config.data_options)
    if args.data_dir:
        data_options["root"] = args.data_dir
    if args.count:
        data_options["count"] = args.count
    changes["data_options"] = data_options
    return replace(config, **changes)


def _train(args: argparse.Namespace) -> None:
    from .runs import train

    config = _config(args)
    trainer = train(config, args.out, resume=args.resume)
    h = trainer.history
    print(f"trained {config.model} for {trainer.step} steps; validation mIoU "
          f"{100 * h['val_miou'][-1]:.1f}, boundary F {100 * h['val_boundary_f'][-1]:.1f}; "
          f"checkpoint {args.out}/last.pt")


def _eval(args: argparse.Namespace) -> None:
    from .runs import evaluate_checkpoint

    result = evaluate_checkpoint(args.checkpoint, split=args.split, scales=args.scales,
                                 flip=args.flip)
    print(result.summary())
    print("IoU per class:", " ".join(f"{100 * v:.1f}" for v in result.iou))


def _compare(args: argparse.Namespace) -> None:
    import json

    from . import viz
    from .compare import ABLATIONS, BASELINES, compare, format_rows, rows_as_dicts

    config = _config(args)
    entries = ABLATIONS if args.ablation else BASELINES
    name = args.name or ("ablation" if args.ablation else "comparison")
    out = Path(args.out)
    _write(out / ".write-test", "", announce=False)  # fail now, not after minutes of training;
    (out / ".write-test").unlink()  # a probe, so an interrupted run leaves earlier results whole
    rows = compare(config, entries, Path(args.runs) / name, resume=args.resume)
    command = "rnlib " + " ".join(sys.argv[1:]) if sys.argv[1:2] == ["compare"] else "rnlib compare"
    text = (f"# {'Ablation' if args.ablation else 'Comparison'} ({args.preset})\n\n"
            f"Made by `{command}` on {_machine()}.\n\n{format_rows(rows, config)}")
    print(text)
    _write(out / f"{name}.md", text)
    _write(out / f"{name}.json", json.dumps(rows_as_dicts(rows), indent=1))
    viz.plot_comparison(rows, f"{name}: {args.preset}").savefig(out / f"{name}.png", dpi=110)


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
    else:
        options = {}  # hub datasets and folders are read where they are
    for split in args.splits:
        source = load_source(args.name, split, **options)
        print(f"{source.name}: {len(source)} samples")


def _models(args: argparse.Namespace) -> None:
    from .models import describe_models

    for name, doc in describe_models().items():
        print(f"{name:20s} {doc}")


def _write(path: Path, text: str, announce: bool = True) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    except OSError as err:
        raise SystemExit(f"rnlib: cannot write {path}: {err.strerror}; "
                         "choose another --out") from err
    if announce:
        print(f"wrote {path}", file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rnlib",
        description="RefineNet and its baselines: train, evaluate, compare, benchmark.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("models", help="list the registered models")
    p.set_defaults(run=_models)

    def training_options(p: argparse.ArgumentParser) -> None:
        from .train import PRESETS

        p.add_argument("--preset", choices=list(PRESETS), default="cpu-quick")
        p.add_argument("--backbone", help="override the preset's backbone")
        p.add_argument("--time-budget", type=float, metavar="SECONDS",
                       help="training time per model (scaled by RNLIB_BUDGET_SCALE)")
        p.add_argument("--epochs", type=int, help="train for epochs instead of a time budget")
        p.add_argument("--lr", type=float)
        p.add_argument("--batch-size", type=int)
        p.add_argument("--seed", type=int)
        p.add_argument("--device", help="cpu, cuda, cuda:1 (default: cuda when present)")
        p.add_argument("--compile", action="store_const", const=True,
                       help="torch.compile the training steps (worth it on a GPU)")
        p.add_argument("--data-dir", help="where datasets are cached (default: data/)")
        p.add_argument("--count", type=int, help="Shapes: training images (validation: 1/10)")

    p = sub.add_parser("train", help="train a model from a preset (cpu-quick or gpu)")
    p.add_argument("--model", help="a registry name (rnlib models); default: the preset's")
    training_options(p)
    p.add_argument("--out", default="runs/train", help="folder for last.pt and history.json")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    p.set_defaults(run=_train)

    p = sub.add_parser("eval", help="evaluate a checkpoint: mIoU, pixel accuracy, boundary F")
    p.add_argument("checkpoint", help="a last.pt written by rnlib train")
    p.add_argument("--split", help="default: the validation split of the run")
    p.add_argument("--scales", type=float, nargs="+", default=[1.0],
                   help="multi-scale inference, e.g. 0.75 1 1.25")
    p.add_argument("--flip", action="store_true", help="also average the flipped image")
    p.set_defaults(run=_eval)

    p = sub.add_parser("compare", help="RefineNet vs FCN-32s, FCN-8s, dilated OS8 (or ablations)")
    training_options(p)
    p.add_argument("--ablation", action="store_true",
                   help="RefineNet without CRP, without RCUs, with 1, 2 and 4 cascades")
    p.add_argument("--out", default="benchmarks", help="where the table and plot go")
    p.add_argument("--name", help="file name of the results (default: comparison or ablation)")
    p.add_argument("--runs", default="runs", help="where the checkpoints go")
    p.add_argument("--resume", action="store_true",
                   help="continue interrupted runs of the same settings, reuse finished ones")
    p.set_defaults(run=_compare)

    p = sub.add_parser("data", help="prepare (and with --download fetch) a dataset into data/")
    p.add_argument("name", help="shapes, voc, pets, hf:NAME_OR_PATH or a folder")
    p.add_argument("--splits", nargs="+", default=["train", "val"])
    p.add_argument("--download", action="store_true", help="voc and pets: fetch if missing")
    p.add_argument("--count", type=int, default=2000, help="shapes: images per split")
    p.add_argument("--size", type=int, default=128, help="shapes: image side")
    p.add_argument("--seed", type=int, default=0, help="shapes: the dataset's seed")
    p.add_argument("--data-dir", help="default: $RNLIB_DATA_DIR, else the checkout's data/")
    p.set_defaults(run=_data)

    p = sub.add_parser("bench", help="parameters, FLOPs/MACs, latency and peak memory of models")
    p.add_argument("--models", nargs="+", default=["refinenet", "refinenet-lw", "fcn8s",
                                                    "dilated-os8"], metavar="NAME")
    p.add_argument("--backbone", default="resnet50")
    p.add_argument("--num-classes", type=int, default=21)
    p.add_argument("--size", type=int, nargs=2, default=[512, 512], metavar=("H", "W"))
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--no-latency", action="store_true", help="only parameters and FLOPs")
    p.add_argument("--no-memory", action="store_true")
    p.add_argument("--reference", help="model whose latency the others are divided by")
    p.add_argument("--out", help="also write the table to this markdown file")
    p.set_defaults(run=_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except (ValueError, FileNotFoundError, OSError, FloatingPointError) as err:
        raise SystemExit(f"rnlib {args.command}: {err}") from err
