"""What several subcommands share: reading values, the run options of train, eval and
compare, and writing files."""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Sequence
from pathlib import Path

from ..config import AMP_MODES


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


# The flags of train, eval and compare past the configuration's source: (group, flag, the
# TrainConfig field it sets or None, argparse options), in the order --help lists them. Every
# other field is reached with --set KEY=VALUE.
RUN_FLAGS: tuple[tuple[str, str, str | None, dict], ...] = (
    ("data", "--dataset", "dataset", dict(help="shapes, probe-detail (-context, -scale), voc, "
                                               "pets, hf:NAME_OR_PATH or a folder with images/ "
                                               "and masks/ (default: the preset's)")),
    ("data", "--num-classes", "num_classes", dict(type=int,
                                                  help="default: the dataset's own classes")),
    ("data", "--data-dir", None, dict(help="where datasets are cached (default: "
                                           "$RNLIB_DATA_DIR, else the checkout's data/)")),
    ("data", "--count", None, dict(type=int, help="Shapes, probes: training images (val and test: "
                                                  "1/10)")),
    ("model", "--model", "model", dict(help="a registry name (rnlib models); default: the "
                                            "preset's")),
    ("model", "--backbone", "backbone", dict(help="resnet18 .. resnet152")),
    ("model", "--pretrained-backbone", "pretrained_backbone", dict(
        nargs="?", const="imagenet", metavar="WEIGHTS",
        help="imagenet (torchvision's, a download; the default value), glyphs (the course's, "
             "shipped), a state-dict file, or false")),
    ("model", "--model-option", None, dict(
        action="append", metavar="KEY=VALUE",
        help="e.g. widths=64,64 crp_blocks=2 (repeatable; rnlib models --options)")),
    ("training", "--epochs", "epochs", dict(type=int, help="train for this many epochs")),
    ("training", "--steps", "steps", dict(type=int, help="train for this many optimizer steps")),
    ("training", "--time-budget", "time_budget_s", dict(
        type=float, metavar="SECONDS",
        help="train for as many steps as fit in this time (machine-dependent)")),
    ("training", "--lr", "lr", dict(type=float)),
    ("training", "--batch-size", "batch_size", dict(
        type=int, help="the global batch (divided among processes under torchrun)")),
    ("training", "--seed", "seed", dict(type=int)),
    ("training", "--device", "device", dict(help="auto, cpu, cuda, cuda:1 (default auto: cuda "
                                                 "when present)")),
    ("training", "--amp", "amp", dict(
        nargs="?", const="on", choices=AMP_MODES,
        help="mixed precision (rnlib.runtime.amp_dtype); --amp alone: fp16 on CUDA, bf16 on a "
             "CPU that computes it natively, refused on others")),
    ("training", "--compile", "compile", dict(
        action="store_const", const=True,
        help="torch.compile the training steps (worth it on a GPU)")),
    ("training", "--threads", "threads", dict(
        type=int, help="CPU threads per run (default: the preset's; cpu-quick: 1, so that the "
                       "digits do not depend on the core count)")),
    ("training", "--workers", "num_workers", dict(type=int, metavar="WORKERS",
                                                      help="data-loading processes")),
    ("training", "--eval-every-steps", "eval_every_steps", dict(
        type=int, help="evaluate every N steps (curves)")),
    ("training", "--save-every-steps", "save_every_steps", dict(
        type=int, help="checkpoint every N steps")),
    ("training", "--save-every-minutes", "save_every_minutes", dict(
        type=float, help="checkpoint every N minutes")),
)


def run_config(args: argparse.Namespace, base=None):
    """The run's config: the preset (or ``base``), the file, then every flag given."""
    from ..config import make_config

    flags = {field: getattr(args, field, None) for _, _, field, _ in RUN_FLAGS if field}
    flags.update(pairs(args.set, "--set"))
    if args.count:
        flags["data_options"] = {**flags.get("data_options", {}), "count": args.count}
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


def add_run_options(p: argparse.ArgumentParser, *, model: bool) -> None:
    """The options of train, eval and compare: the config's source, data, model, budget."""
    from ..config import PRESETS

    g = p.add_argument_group("configuration (a preset, then --config FILE, then these flags)")
    g.add_argument("--preset", choices=list(PRESETS), default="cpu-quick")
    g.add_argument("--config", metavar="FILE", help="a TOML or YAML file holding TrainConfig "
                                                    "fields (rnlib train --print-config)")
    g.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="any TrainConfig field, e.g. --set optimizer=sgd (repeatable)")
    groups = {name: p.add_argument_group(name) for name in ("data", "model", "training")}
    for group, flag, field, options in RUN_FLAGS:
        if model or field != "model":
            groups[group].add_argument(flag, **({"dest": field} if field else {}), **options)
