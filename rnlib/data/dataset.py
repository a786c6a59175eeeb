"""A source plus a transform, as a torch Dataset of ``(image (3, H, W) float, mask (H, W) long)``.

Every item is checked as it is read: an image and a mask of different sizes, or labels outside
``0 .. num_classes - 1`` other than the ignore index, raise a :class:`DataError` that names the
item. :func:`check_labels` runs the same check on a spread of items before training starts;
:func:`pad_collate` batches images of different sizes, padding masks with the ignore index.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as TF

from ..constants import IGNORE_INDEX
from .sources import DataError, Source

__all__ = ["SegmentationDataset", "check_labels", "pad_collate"]


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
            raise DataError(f"{self.source.describe(i)}: image is {image.size[0]}x{image.size[1]} "
                            f"but its mask is {labels.shape[1]}x{labels.shape[0]} (W x H); "
                            f"masks must have the image's size")
        bad = np.unique(labels[(labels >= self.num_classes) & (labels != self.ignore_index)])
        if bad.size:
            fix = (f"the dataset names {len(self.source.classes)} classes (its classes.txt or "
                   f"its own list): name every label there, or remap the mask"
                   if self.source.classes else
                   "raise num_classes (--num-classes), or remap the mask")
            raise DataError(f"{self.source.describe(i)}: mask holds labels {bad[:5].tolist()} but "
                            f"the model has {self.num_classes} classes (0..{self.num_classes - 1},"
                            f" {self.ignore_index} = ignore); {fix}")
        img = tv_tensors.Image(TF.pil_to_tensor(image))  # (3, H, W) uint8
        mask = tv_tensors.Mask(torch.from_numpy(labels.astype(np.int64)))  # (H, W)
        if self.transform is not None:
            img, mask = self.transform(img, mask)
        return img.as_subclass(torch.Tensor), mask.as_subclass(torch.Tensor).long()


def check_labels(source: Source, num_classes: int, samples: int = 16,
                 ignore_index: int = IGNORE_INDEX) -> None:
    """Read ``samples`` masks spread over ``source`` and raise the DataError of the first that
    does not fit ``num_classes``: a wrong class count is found before training, not hours in."""
    data = SegmentationDataset(source, num_classes, ignore_index=ignore_index)
    for i in np.linspace(0, len(data) - 1, min(samples, len(data))).round().astype(int):
        data[int(i)]


def pad_collate(batch: Sequence[tuple[torch.Tensor, torch.Tensor]]
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack (image, mask) pairs of different sizes: each is padded at the bottom and right to
    the largest, images with 0 and masks with the ignore index, which no metric counts."""
    h = max(image.shape[-2] for image, _ in batch)
    w = max(image.shape[-1] for image, _ in batch)

    def pad(t: torch.Tensor, value: float) -> torch.Tensor:
        return F.pad(t, (0, w - t.shape[-1], 0, h - t.shape[-2]), value=value)

    return (torch.stack([pad(image, 0.0) for image, _ in batch]),
            torch.stack([pad(mask, IGNORE_INDEX) for _, mask in batch]))
