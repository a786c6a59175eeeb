"""What several subcommands share: reading values, the run options of train, eval and
compare, and writing files."""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Sequence
from pathlib import Path


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


def pairs(items: Sequence[str] | None, flag: str) -> dict[str, object]:
    pairs = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"{flag} takes KEY=VALUE, got {item!r} (e.g. {flag} widths=64,64)")
        pairs[key.strip()] = parse_value(value.strip())
    return pairs


def run_config(args: argparse.Namespace, base=None):
    """The run's config: the preset (or ``base``), the file, then every flag given."""
    from ..config import make_config

    data_options = {"count": args.count} if args.count else {}
    flags = {
        "model": getattr(args, "model", None), "backbone": args.backbone,
        "dataset": args.dataset, "num_classes": args.num_classes,
        "pretrained_backbone": args.pretrained_backbone, "time_budget_s": args.time_budget,
        "epochs": args.epochs, "steps": args.steps, "lr": args.lr, "batch_size": args.batch_size,
        "seed": args.seed, "device": args.device, "compile": args.compile,
        "num_workers": args.workers, "eval_every_steps": args.eval_every_steps,
        "save_every_steps": args.save_every_steps,
        "save_every_minutes": args.save_every_minutes,
    }
    flags.update(pairs(args.set, "--set"))
    if data_options:
        flags["data_options"] = {**flags.get("data_options", {}), **data_options}
    return make_config(base or args.preset, file=args.config, data_dir=args.data_dir,
                       model_options=pairs(args.model_option, "--model-option"), **flags)


def write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` (the folders made), announced on stderr."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    except OSError as err:
        raise SystemExit(f"rnlib: cannot write {path}: {err.strerror}; "
                         f"choose another --out") from err
    print(f"wrote {path}", file=sys.stderr)


def machine() -> str:
    import os
    import platform

    import torch

    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    return (f"{platform.machine()}, {os.cpu_count()} cores, {device}, torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads")


def add_run_options(p: argparse.ArgumentParser, *, model: bool) -> None:
    """The options of train, eval and compare: the config's source, data, model, budget."""
    from ..config import PRESETS

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
    g.add_argument("--compile", action="store_const", const=True,
                   help="torch.compile the training steps (worth it on a GPU)")
    g.add_argument("--workers", type=int, help="data-loading processes")
    g.add_argument("--eval-every-steps", type=int, help="evaluate every N steps (curves)")
    g.add_argument("--save-every-steps", type=int, help="checkpoint every N steps")
    g.add_argument("--save-every-minutes", type=float, help="checkpoint every N minutes")
