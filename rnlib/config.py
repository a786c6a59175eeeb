"""Every knob of a training run (:class:`TrainConfig`), the presets, and the one way to make a
config from a preset, a TOML or YAML file and command-line options (:func:`make_config`).

A config is checked when it is made, field by field: an unknown key, a value of the wrong type
or out of range, or a model option the model does not take is refused with a message that
names it and the fix, before any data is read or any step is trained.
"""

from __future__ import annotations

import math
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml

from .data.sources import dataset_options
from .models import registry
from .suggest import did_you_mean
from .weights import check_pretrained

__all__ = ["TrainConfig", "PRESETS", "make_config", "with_model", "load_config_file",
           "dump_config", "plain"]

OPTIMIZERS = ("adamw", "sgd")
AMP_MODES = ("auto", "on", "off", "bf16", "fp16", "native")  # rnlib.runtime.amp_dtype
MAX_TIME_BUDGET_S = 365 * 24 * 3600.0  # longer is a typo (or inf), not a training run


AFFECTS_RESULTS = "affects_results"  # the metadata key of every TrainConfig field
RECORDED_AS = "recorded_as"  # an operational field's value in a run's settings


def _result(default: Any = MISSING, *, factory: Any = MISSING) -> Any:
    """A field that changes what a run computes: part of its settings, as it is."""
    return field(default=default, default_factory=factory, metadata={AFFECTS_RESULTS: True})


def _operational(default: Any, *, recorded_as: Any = MISSING) -> Any:
    """A field that changes how a run runs or reports, never a weight: its settings record it
    as ``recorded_as`` (default: ``default``) whatever it is."""
    return field(default=default, metadata={
        AFFECTS_RESULTS: False, RECORDED_AS: default if recorded_as is MISSING else recorded_as})


@dataclass
class TrainConfig:
    """Every knob of a training run; saved in each checkpoint as plain data.

    The run's length is ``steps`` optimizer steps if set, else ``epochs`` passes over the
    training set; ``time_budget_s`` instead makes it as many steps as fit in that many seconds
    (re-planned from the pace of the run), which depends on the machine's speed.
    ``RNLIB_BUDGET_SCALE`` multiplies whichever it is. ``batch_size`` is the global batch: under
    ``torchrun`` each of N processes takes ``batch_size / N``.
    """

    # Every field says whether it changes what the run computes (_result) or only how it runs
    # and reports (_operational): a run resumes, or is reused, only into the same results.
    model: str = _result("refinenet")
    backbone: str = _result("resnet18")
    num_classes: int | None = _result(None)  # None: the dataset's own number of classes
    model_options: dict = _result(factory=dict)
    pretrained_backbone: bool | str = _result(False)  # False, "imagenet", "glyphs" or a file
    # shapes, voc, pets, hf:NAME_OR_PATH or a folder; None: none known (converted weights)
    dataset: str | None = _result("shapes")
    data_options: dict = _result(factory=dict)
    val_split: str = _result("val")
    test_split: str = _result("test")
    crop: int = _result(128)
    scale: tuple[float, float] = _result((0.5, 2.0))  # random scale range of the augmentation
    batch_size: int = _result(8)
    epochs: int = _result(10)
    steps: int | None = _result(None)
    time_budget_s: float | None = _result(None)
    optimizer: str = _result("adamw")
    lr: float = _result(1e-3)
    backbone_lr_mult: float = _result(1.0)
    weight_decay: float = _result(1e-4)
    momentum: float = _result(0.9)
    poly_power: float = _result(0.9)
    warmup_steps: int = _result(0)  # the learning rate rises linearly over these first steps
    freeze_bn: bool = _result(False)
    sync_bn: bool = _result(False)  # SyncBatchNorm across the processes of a distributed run
    amp: str = _result("auto")  # auto (AMP on CUDA, fp32 on CPU), on, off, bf16, fp16, native
    channels_last: bool = _result(True)
    compile: bool = _operational(False)  # torch.compile the training forward (GPU: faster)
    # epochs between evaluations on val_split, 0 = only at the end; recorded as 0, as the
    # checkpoints and kept records written so far hold it
    eval_every: int = _operational(1, recorded_as=0)
    eval_every_steps: int = _operational(0)  # steps between evaluations (curves); 0 = none
    save_every_steps: int = _operational(0)  # checkpoints every N steps (0 = at epochs only)
    save_every_minutes: float = _operational(0.0)  # ... or every N minutes of training
    seed: int = _result(0)  # initial weights, data order, augmentation and dropout
    num_workers: int = _operational(0)
    device: str = _operational("auto")
    # CPU threads a run computes with (None: torch's default, one per core). The order of a
    # convolution's sums follows the thread count, and so do the digits: at 1 they are the same
    # on any number of cores, and rnlib.compare trains runs side by side, one per core.
    threads: int | None = _operational(None)

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in fields(self):
            setattr(self, f.name, _coerce(f.name, getattr(self, f.name), hints[f.name]))
        self._check()

    def _check(self) -> None:
        def need(ok: bool, what: str) -> None:
            if not ok:
                raise ValueError(f"training option {what}")

        registry.check_options(self.model, self.model_options)
        check_pretrained(self.pretrained_backbone, self.backbone)
        takes = dataset_options(self.dataset)
        for key in self.data_options:
            need(key in takes, f"data_options has {key!r}, which dataset {self.dataset!r} does "
                               f"not take (it takes {', '.join(takes)})")
        need(self.optimizer in OPTIMIZERS, f"optimizer must be one of {OPTIMIZERS}, "
                                           f"got {self.optimizer!r}")
        need(self.amp in AMP_MODES, f"amp must be one of {AMP_MODES}, got {self.amp!r}")
        for name in ("batch_size", "epochs", "crop"):
            need(getattr(self, name) >= 1, f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("steps", "num_classes", "threads"):
            value = getattr(self, name)
            need(value is None or value >= 1, f"{name} must be >= 1 (or unset), got {value}")
        for name in ("time_budget_s", "lr", "backbone_lr_mult", "weight_decay", "momentum",
                     "poly_power", "save_every_minutes"):
            value = getattr(self, name)
            need(value is None or math.isfinite(value),
                 f"{name} must be a finite number, got {value}")
        need(all(math.isfinite(s) for s in self.scale), f"scale must be finite, got {self.scale}")
        need(self.time_budget_s is None or 0 < self.time_budget_s <= MAX_TIME_BUDGET_S,
             f"time_budget_s must be > 0 and at most {MAX_TIME_BUDGET_S:g} seconds (a year), "
             f"or unset; got {self.time_budget_s}")
        need(self.lr > 0, f"lr must be > 0, got {self.lr}")
        need(0 <= self.momentum < 1, f"momentum must be in [0, 1), got {self.momentum}")
        need(self.poly_power >= 0, f"poly_power must be >= 0 (0.9 in the paper's schedule), "
                                   f"got {self.poly_power}")
        need(0 <= self.seed < 2**63, f"seed must be an integer in [0, 2**63), got {self.seed}")
        need(0 < self.scale[0] <= self.scale[1], f"scale must be (low, high) with "
                                                 f"0 < low <= high, got {self.scale}")
        for name in ("warmup_steps", "eval_every", "eval_every_steps", "save_every_steps",
                     "save_every_minutes", "num_workers", "weight_decay", "backbone_lr_mult"):
            need(getattr(self, name) >= 0, f"{name} must be >= 0, got {getattr(self, name)}")

    @classmethod
    def from_dict(cls, data: Mapping) -> TrainConfig:
        """A config from plain data (a checkpoint's, a file's); unknown keys are refused."""
        known = [f.name for f in fields(cls)]
        for key in data:
            if key not in known:
                raise ValueError(f"unknown training options [{key!r}].{did_you_mean(key, known)} "
                                 f"Known: {', '.join(known)}")
        return cls(**data)


def _coerce(name: str, value: object, hint: object) -> object:
    """``value`` as the type ``hint`` of field ``name``, or a ValueError that names both."""
    options = typing.get_args(hint) if typing.get_origin(hint) in (types.UnionType,
                                                                   typing.Union) else (hint,)
    for option in options:
        if option is type(None) and value is None:
            return None
        if option is bool and isinstance(value, bool):
            return value
        if option is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if option is float and not isinstance(value, bool):
            if isinstance(value, (int, float)):
                return float(value)
            if isinstance(value, str):  # YAML 1.1 reads 1e-3 as a string
                try:
                    return float(value)
                except ValueError:
                    pass
        if option is str and isinstance(value, str):
            return value
        if option is dict and isinstance(value, Mapping):
            return dict(value)
        if typing.get_origin(option) is tuple and isinstance(value, (list, tuple)) \
                and len(value) == len(typing.get_args(option)):
            return tuple(_coerce(name, v, t) for v, t in zip(value, typing.get_args(option)))
    wanted = " or ".join("none" if o is type(None) else getattr(o, "__name__", str(o))
                         for o in options)
    raise ValueError(f"training option {name} must be {wanted}, got {value!r}")


def plain(value):
    """Tuples to lists, recursively, so configs round-trip through checkpoints, JSON, YAML."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


# The course's presets. Runs are budgeted in steps or epochs, so that a result does not depend on
# the machine's speed; every model fine-tunes the same pretrained ResNet (rnlib.weights) with
# the paper's recipe of a 10x lower learning rate for the pretrained backbone. The learning rate
# warms up over 50 steps for every model: without it Adam's first steps blow up RefineNet's
# unnormalised decoder (benchmarks/refinenet_start.md).
_COURSE = TrainConfig(
    model="refinenet", backbone="resnet18", pretrained_backbone="glyphs",
    model_options={"widths": (64, 64)}, dataset="shapes",
    data_options={"count": 2000, "size": 128}, crop=128, batch_size=8, epochs=1,
    optimizer="adamw", lr=1e-3, warmup_steps=50, backbone_lr_mult=0.1, weight_decay=1e-4,
    eval_every=0, threads=1)
PRESETS: dict[str, TrainConfig] = {
    # The course on 2 CPU cores: ResNet-18 pretrained on Glyphs, a 64-wide decoder (a 256-wide
    # one runs 5.3x slower per step: docs/design.md), 96x96 Shapes (the same objects per image,
    # drawn 0.75x as large: 0.56x the pixels of the reference's 128x128); 400 steps (1.6
    # epochs) per model in bfloat16 where the processor computes it (fp32 elsewhere, about twice
    # the time). RefineNet overtakes the baselines between steps 200 and 400 (the reference's
    # curves), so 200 steps could not decide the course's comparison. At 128x128 the same steps
    # took rnlib compare 7 minutes on a processor without AMX, and batches of 4 instead of 8
    # did not decide (issue 20; README).
    # Every CPU preset computes on one thread per run: the digits do not depend on the core
    # count (a student's run on a processor like ours gives the recorded ones), and rnlib
    # compare trains one run per core (rnlib.side_by_side).
    "cpu-quick": replace(_COURSE, data_options={"count": 2000, "size": 96}, crop=96, steps=400,
                         amp="native"),
    # The probes' regime (benchmarks/probes.py, coarse_paths.py): the reference's 128x128 task
    # for 200 fp32 steps, as cpu-quick was when they were recorded; their records come back
    # with it.
    "cpu-probe": replace(_COURSE, steps=200),
    # The course's reference (benchmarks/reference.py): the same task for 1000 steps (at 500,
    # RefineNet was still rising), with learning curves and a checkpoint every 100 steps.
    "reference": replace(_COURSE, epochs=4, eval_every_steps=50, save_every_steps=100),
    # The same task on a GPU: the paper's decoder widths, 256x256 Shapes, AMP.
    "gpu-quick": replace(
        _COURSE, model_options={"widths": (512, 256)}, data_options={"count": 4000, "size": 256},
        crop=256, batch_size=16, epochs=8, eval_every=1, num_workers=4, threads=None),
    # The paper's setting on a GPU: ResNet-101 with ImageNet weights (a download), 512/256
    # widths, PASCAL VOC 2012 at 512x512 crops, SGD with a 10x lower backbone learning rate.
    "gpu": TrainConfig(
        model="refinenet", backbone="resnet101", pretrained_backbone="imagenet",
        dataset="voc", data_options={"download": True}, crop=512, batch_size=16, epochs=50,
        optimizer="sgd", lr=1e-2, backbone_lr_mult=0.1, weight_decay=1e-4, num_workers=8),
}


def with_model(config: TrainConfig, model: str, options: Mapping[str, object] = ()
               ) -> TrainConfig:
    """``config`` for another model: the config's model options that ``model`` takes are kept
    (a preset's decoder widths serve every RefineNet, not an FCN), then ``options`` apply."""
    known = registry.model_options(model)
    kept = {k: v for k, v in config.model_options.items() if k in known}
    return replace(config, model=model, model_options={**kept, **dict(options)})


def load_config_file(path: str | Path) -> dict:
    """The options in a TOML (``.toml``) or YAML (``.yaml``, ``.yml``) file, as a dict."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no config file at {path}")
    text = path.read_text()
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as err:
        raise ValueError(f"cannot read the config file {path}: {err}") from err
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"the config file {path} must hold key: value pairs, "
                         f"got {type(data).__name__}")
    return data


def dump_config(config: TrainConfig) -> str:
    """The config as YAML, readable back by ``--config``."""
    return yaml.safe_dump(plain(asdict(config)), sort_keys=False)


def make_config(base: str | TrainConfig = "cpu-quick", *, file: str | Path | None = None,
                model_options: Mapping[str, object] = (), data_dir: str | Path | None = None,
                **overrides) -> TrainConfig:
    """A preset (or ``base`` config), then the file's values, then ``overrides`` (the command
    line's flags; None means not given) and ``model_options`` on top; checked as a whole. A
    model or dataset named on top keeps only the base's options that it takes. ``data_dir``
    is where datasets are cached: the ``root`` of those that have one (a folder dataset is
    read where it is)."""
    if isinstance(base, str):
        if base not in PRESETS:
            raise ValueError(f"unknown preset {base!r}; choose one of {', '.join(PRESETS)}")
        base = PRESETS[base]
    values = plain(asdict(base))
    given = load_config_file(file) if file else {}
    given.update({k: v for k, v in overrides.items() if v is not None})
    if "epochs" in given and "steps" not in given:
        given["steps"] = None  # an epoch count replaces the preset's step count
    if "epochs" in given or "steps" in given:
        given.setdefault("time_budget_s", None)
    model = given.get("model", values["model"])
    known = registry.model_options(model)
    values["model_options"] = {k: v for k, v in values["model_options"].items() if k in known}
    values["model_options"].update(given.pop("model_options", {}))
    values["model_options"].update(model_options)
    dataset = given.get("dataset", values["dataset"])
    takes = dataset_options(dataset)  # a preset's Shapes options do not go to another dataset
    values["data_options"] = {k: v for k, v in values["data_options"].items() if k in takes}
    values["data_options"].update(given.pop("data_options", {}))
    if data_dir is not None and "root" in takes:
        values["data_options"]["root"] = str(data_dir)
    unknown = set(given) - set(values)
    if unknown:
        TrainConfig.from_dict(given)  # raises the error that names them
    values.update(given)
    return TrainConfig.from_dict(values)
