"""From a TrainConfig to a trained model: build the datasets and the model, run the Trainer.

This is the glue that ``rnlib train``, ``rnlib eval``, ``rnlib compare`` and the notebooks
share; the Trainer itself takes any model and any datasets.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader

from .data import SegmentationDataset, eval_transform, load_source, train_transform
from .data.sources import Source
from .evaluate import EvalResult, evaluate
from .models import build_model
from .train import TrainConfig, Trainer, load_checkpoint

__all__ = ["make_source", "make_model", "train", "load_trained", "evaluate_checkpoint"]


def make_source(config: TrainConfig, split: str) -> Source:
    """The source of ``split`` named by ``config.dataset`` (Shapes: validation and test get a
    tenth as many images as training, at least 64)."""
    options = dict(config.data_options)
    if config.dataset == "shapes" and split != "train":
        options["count"] = max(64, options.get("count", 2000) // 10)
    return load_source(config.dataset, split, **options)


def make_model(config: TrainConfig) -> nn.Module:
    return build_model(config.model, num_classes=config.num_classes, backbone=config.backbone,
                       pretrained_backbone=config.pretrained_backbone, **config.model_options)


def train(config: TrainConfig, out_dir: str | Path, *, resume: bool = False,
          progress: bool = True) -> Trainer:
    """Train ``config`` into ``out_dir`` (``last.pt``, ``history.json``); returns the Trainer,
    whose ``.model`` and ``.history`` hold the result."""
    train_set = SegmentationDataset(make_source(config, "train"), config.num_classes,
                                    train_transform(config.crop, scale=tuple(config.scale)))
    val_set = SegmentationDataset(make_source(config, config.val_split), config.num_classes,
                                  eval_transform())
    trainer = Trainer(make_model(config), train_set, val_set, config, out_dir, progress=progress)
    trainer.fit(resume=resume)
    return trainer


def load_trained(checkpoint: str | Path) -> tuple[nn.Module, TrainConfig]:
    """The model and the config of a checkpoint written by the Trainer (no code is run)."""
    state = load_checkpoint(checkpoint)
    config = TrainConfig.from_dict(state["config"])
    model = make_model(config)
    model.load_state_dict(state["model"])
    return model.eval(), config


def evaluate_checkpoint(checkpoint: str | Path, *, split: str | None = None,
                        scales=(1.0,), flip: bool = False, progress: bool = True) -> EvalResult:
    """Evaluate a checkpoint on its validation split (or ``split``)."""
    model, config = load_trained(checkpoint)
    model.to("cuda" if torch.cuda.is_available() else "cpu")
    data = SegmentationDataset(make_source(config, split or config.val_split),
                               config.num_classes, eval_transform())
    batch = config.batch_size if config.dataset == "shapes" else 1  # real images vary in size
    return evaluate(model, DataLoader(data, batch_size=batch), config.num_classes,
                    scales=scales, flip=flip, progress=progress)
