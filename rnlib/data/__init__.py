"""Data: the offline Shapes dataset, real datasets, joint transforms, a checked Dataset."""

import datasets

from .dataset import SegmentationDataset
from .sources import load_source
from .synthetic import CLASSES, PALETTE
from .transforms import IGNORE_INDEX, eval_transform, train_transform

datasets.disable_progress_bars()  # one bar per shard write clutters notebooks and logs

__all__ = ["CLASSES", "IGNORE_INDEX", "PALETTE", "SegmentationDataset", "eval_transform",
           "load_source", "train_transform"]
