"""A source plus a transform, as a torch Dataset of ``(image (3, H, W) float, mask (H, W) long)``.

Every item is checked as it is read: an image and a mask of different sizes, or labels outside
``0 .. num_classes - 1`` other than the ignore index, raise an error that names the item.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as TF

from .sources import Source
from .transforms import IGNORE_INDEX

__all__ = ["SegmentationDataset"]


class SegmentationDataset(Dataset):
    """``dataset[i] -> (image, mask)`` with checked labels; ``transform`` acts on both."""

    def __init__(self, source: Source, num_classes: int, transform: Callable | None = None,
                 ignore_index: int = IGNORE_INDEX) -> None:
        if len(source) == 0:
            raise ValueError(f"{source.name} has no samples; check the path and the split")
        self.source, self.num_classes = source, num_classes
        self.transform, self.ignore_index = transform, ignore_index

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, labels = self.source[i]
        if image.size != (labels.shape[1], labels.shape[0]):
            raise ValueError(f"{self.source.describe(i)}: image is {image.size[0]}x{image.size[1]} "
                             f"but its mask is {labels.shape[1]}x{labels.shape[0]} (W x H); "
                             f"masks must have the image's size")
        bad = np.unique(labels[(labels >= self.num_classes) & (labels != self.ignore_index)])
        if bad.size:
            raise ValueError(f"{self.source.describe(i)}: mask holds labels {bad[:5].tolist()} but "
                             f"the model has {self.num_classes} classes (0..{self.num_classes - 1},"
                             f" {self.ignore_index} = ignore); raise num_classes or remap the mask")
        img = tv_tensors.Image(TF.pil_to_tensor(image))  # (3, H, W) uint8
        mask = tv_tensors.Mask(torch.from_numpy(labels.astype(np.int64)))  # (H, W)
        if self.transform is not None:
            img, mask = self.transform(img, mask)
        return img.as_subclass(torch.Tensor), mask.as_subclass(torch.Tensor).long()
