"""From a TrainConfig to a trained model: build the datasets and the model, run the Trainer.

This is the glue that ``rnlib train``, ``rnlib eval``, ``rnlib compare`` and the notebooks
share; the Trainer itself takes any model and any datasets. Everything that can be checked
before training is checked first: the model and its options, the data, the number of classes.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from torch import nn
from torch.utils.data import DataLoader

from .checkpoint import checkpoint_config, load_checkpoint, non_finite
from .config import TrainConfig
from .data import (
    SegmentationDataset,
    check_labels,
    eval_transform,
    load_source,
    pad_collate,
    train_transform,
)
from .data.sources import GENERATED, SHAPES_COUNT, Source, shapes_count
from .evaluate import EvalResult, evaluate
from .memory import check_run_memory
from .models import build_model
from .optim import Schedule, poly_lr
from .rundir import start_rule
from .runtime import Runtime, amp_dtype, choose_device
from .seeding import INIT, derive_seed, seeded
from .train import Trainer

__all__ = ["make_source", "make_model", "resolve_classes", "class_names", "train",
           "load_trained", "evaluate_checkpoint"]


def make_source(config: TrainConfig, split: str) -> Source:
    """The source of ``split`` named by ``config.dataset`` (Shapes and the probes:
    ``data_options["count"]`` is the training set's size, and
    :func:`~rnlib.data.sources.shapes_count` the split's)."""
    options = dict(config.data_options)
    if config.dataset in GENERATED:
        options["count"] = shapes_count(split, options.get("count", SHAPES_COUNT))
    return load_source(config.dataset, split, **options)


def make_model(config: TrainConfig) -> nn.Module:
    """The config's model, its initial weights drawn from the config's seed."""
    if config.num_classes is None:
        raise ValueError("num_classes is not set; resolve_classes(config, source) takes it "
                         "from the dataset")
    with seeded(derive_seed(config.seed, INIT)):
        return build_model(config.model, num_classes=config.num_classes,
                           backbone=config.backbone,
                           pretrained_backbone=config.pretrained_backbone,
                           **config.model_options)


def resolve_classes(config: TrainConfig, source: Source) -> TrainConfig:
    """``config`` with ``num_classes`` from the dataset when it does not say, checked against
    a spread of the dataset's masks."""
    known = len(source.classes) or None
    if config.num_classes is None and known is None:
        raise ValueError(f"{source.name} does not name its classes; pass --num-classes "
                         f"(num_classes=...), or list them in a classes.txt beside the images")
    if config.num_classes is not None and known is not None and config.num_classes != known:
        raise ValueError(f"num_classes={config.num_classes}, but {source.name} has {known} "
                         f"classes ({', '.join(source.classes[:6])}...); drop --num-classes")
    config = replace(config, num_classes=config.num_classes or known)
    check_labels(source, config.num_classes)
    return config


def train(config: TrainConfig, out_dir: str | Path, *, resume: bool = False,
          overwrite: bool = True, progress: bool = True, schedule: Schedule = poly_lr
          ) -> Trainer:
    """Train ``config`` into ``out_dir`` (``last.pt``, ``history.json``); returns the Trainer,
    whose ``.model`` and ``.history`` hold the result (``.config`` has ``num_classes`` set).

    The folder's rules (:mod:`rnlib.rundir`: ``resume`` needs a checkpoint; a checkpoint
    there is kept as ``last.pt.bak`` with ``overwrite``, refused without) and the memory that
    the crops need are checked before any data is made; the folder is locked while training
    (:meth:`Trainer.fit`)."""
    runtime = Runtime.start(config.device)
    amp_dtype(config.amp, runtime.device)  # an AMP the device cannot run: refused now
    check_run_memory(config, runtime.device)
    start_rule(out_dir, resume, overwrite)  # again under the folder's lock, in fit
    with runtime.main_first():  # one process makes a dataset's cache
        train_source = make_source(config, "train")
        val_source = make_source(config, config.val_split)
    config = resolve_classes(config, train_source)
    model = make_model(config)
    train_set = SegmentationDataset(train_source, config.num_classes,
                                    train_transform(config.crop, scale=config.scale))
    val_set = SegmentationDataset(val_source, config.num_classes, eval_transform())
    trainer = Trainer(model, train_set, val_set, config, out_dir, progress=progress,
                      schedule=schedule)
    trainer.fit(resume=resume, overwrite=overwrite)
    return trainer


def class_names(source: Source, num_classes: int) -> tuple[str, ...]:
    """The source's class names, or ``class 0`` .. when it has none."""
    return source.classes or tuple(f"class {i}" for i in range(num_classes))


def load_trained(checkpoint: str | Path, config: TrainConfig | None = None
                 ) -> tuple[nn.Module, TrainConfig]:
    """The model and the config of a checkpoint written by the Trainer (no code is run);
    ``config`` replaces the checkpoint's own (e.g. another dataset, or align_corners), and the
    weights must fit the model it builds."""
    state = load_checkpoint(checkpoint)
    config = config or TrainConfig.from_dict(checkpoint_config(state, checkpoint))
    bad, total = non_finite(state["model"])
    if bad:
        raise ValueError(f"{checkpoint} holds {bad} NaN or infinite values among its {total} "
                         f"weights: it is the result of a diverged run, and its scores would "
                         f"mean nothing; train again with a lower learning rate")
    model = build_model(config.model, num_classes=config.num_classes, backbone=config.backbone,
                        **config.model_options)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as err:
        wanted, got = model.state_dict(), state["model"]
        missing, extra = sorted(set(wanted) - set(got)), sorted(set(got) - set(wanted))
        shapes = [k for k in wanted if k in got and wanted[k].shape != got[k].shape]
        first = (f"{shapes[0]} is {tuple(got[shapes[0]].shape)} in the file, "
                 f"{tuple(wanted[shapes[0]].shape)} in the model" if shapes
                 else (missing or extra)[0] if missing or extra else str(err).splitlines()[0])
        raise ValueError(f"the weights in {checkpoint} do not fit {config.model} with options "
                         f"{config.model_options or 'none'} ({len(missing)} missing, "
                         f"{len(extra)} unexpected, {len(shapes)} of other shapes; first: "
                         f"{first}); use the checkpoint's own model options (drop "
                         f"--model-option), or check the file") from None
    return model.eval(), config


def evaluate_checkpoint(checkpoint: str | Path, *, config: TrainConfig | None = None,
                        split: str | None = None, scales=(1.0,), flip: bool = False,
                        progress: bool = True) -> tuple[EvalResult, tuple[str, ...]]:
    """Evaluate a checkpoint on its validation split (or ``split``; with ``config``, on that
    config's dataset), in batches of the config's size (images of mixed sizes are padded with
    the ignore label); returns the result and the class names."""
    model, config = load_trained(checkpoint, config)
    device = choose_device(config.device)
    amp = amp_dtype(config.amp, device)  # an AMP the device cannot run: refused here
    source = make_source(config, split or config.val_split)
    config = resolve_classes(config, source)
    data = SegmentationDataset(source, config.num_classes, eval_transform())
    loader = DataLoader(data, batch_size=config.batch_size, collate_fn=pad_collate,
                        num_workers=config.num_workers)
    result = evaluate(model.to(device), loader, config.num_classes, scales=scales, flip=flip,
                      progress=progress, channels_last=config.channels_last, amp_dtype=amp)
    return result, class_names(source, config.num_classes)
