"""Data: the offline Shapes dataset, real datasets, joint transforms, a checked Dataset."""

import datasets

from .dataset import SegmentationDataset, check_labels, pad_collate
from .sources import DataError, Source, data_dir, load_source
from .synthetic import CLASSES, PALETTE
from .transforms import IGNORE_INDEX, eval_transform, train_transform

datasets.disable_progress_bars()  # one bar per shard write clutters notebooks and logs

__all__ = ["CLASSES", "DataError", "IGNORE_INDEX", "PALETTE", "SegmentationDataset", "Source",
           "check_labels", "data_dir", "eval_transform", "load_source", "pad_collate",
           "train_transform"]
