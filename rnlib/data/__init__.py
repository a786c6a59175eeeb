"""Data: the offline Shapes dataset, real datasets, joint transforms, a checked Dataset."""

from ..constants import IGNORE_INDEX
from .dataset import SegmentationDataset, check_labels, pad_collate
from .sources import DataError, Source, data_dir, load_source
from .synthetic import CLASSES, PALETTE
from .transforms import eval_transform, train_transform

__all__ = ["CLASSES", "DataError", "IGNORE_INDEX", "PALETTE", "SegmentationDataset", "Source",
           "check_labels", "data_dir", "eval_transform", "load_source", "pad_collate",
           "train_transform"]
