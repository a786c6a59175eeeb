"""Joint image + mask transforms on torchvision.transforms.v2 (tv_tensors Image and Mask).

v2 applies every geometric step to the image and the mask together, with nearest-neighbour
interpolation for the mask; crops that reach past the image are padded with 0 in the image and
the ignore index (255) in the mask, so padding never counts as a class.
"""

from __future__ import annotations

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from ..constants import IGNORE_INDEX, IMAGENET_MEAN, IMAGENET_STD

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "IGNORE_INDEX", "train_transform", "eval_transform",
           "denormalize"]


def _to_float() -> list[v2.Transform]:
    return [v2.ToDtype({tv_tensors.Image: torch.float32, "others": None}, scale=True),
            v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)]


def train_transform(crop: int | tuple[int, int], *, scale: tuple[float, float] = (0.5, 2.0),
                    flip: bool = True, ignore_index: int = IGNORE_INDEX) -> v2.Compose:
    """Random scale (the image fitted to the crop, times a factor drawn from ``scale``), random
    crop padded with the ignore index, horizontal flip, float conversion, ImageNet normalisation."""
    crop = (crop, crop) if isinstance(crop, int) else tuple(crop)
    steps: list[v2.Transform] = [
        v2.ScaleJitter(target_size=crop, scale_range=scale, antialias=True),
        v2.RandomCrop(crop, pad_if_needed=True,
                      fill={tv_tensors.Image: 0, tv_tensors.Mask: ignore_index}),
    ]
    if flip:
        steps.append(v2.RandomHorizontalFlip())
    return v2.Compose(steps + _to_float())


def eval_transform() -> v2.Compose:
    """Float conversion and normalisation only: evaluation sees whole images."""
    return v2.Compose(_to_float())


def denormalize(images: torch.Tensor) -> torch.Tensor:
    """Undo the normalisation, for display: (N, 3, H, W) -> values in [0, 1]."""
    mean = torch.tensor(IMAGENET_MEAN, device=images.device).view(-1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=images.device).view(-1, 3, 1, 1)
    return (images * std + mean).clamp(0, 1)
