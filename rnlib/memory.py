"""Will a run fit in memory? A lower-bound estimate of the memory that training crops, whole
evaluation images and generated images need, checked against what the device has free, so
that a crop of 100000 is one line before any work instead of an allocation of tens of GB.

The bounds are below what rnlib's smallest models measured (ResNet-18 FCN-32s and 64-wide
RefineNet, batch 2, on one CPU thread: 700-1700 bytes a pixel to train at 256-512 px crops,
140-250 to evaluate at 512 px, peak resident memory): they refuse only what cannot fit, never
a run that might.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from .config import TrainConfig

__all__ = ["TRAIN_BYTES_PER_PIXEL", "EVAL_BYTES_PER_PIXEL", "MAX_IMAGE_PIXELS",
           "GENERATE_BYTES_PER_PIXEL", "available_memory", "check_memory", "check_run_memory"]

TRAIN_BYTES_PER_PIXEL = 500  # forward activations kept for the backward pass, and gradients
EVAL_BYTES_PER_PIXEL = 100  # inference: the largest few feature maps at a time
GENERATE_BYTES_PER_PIXEL = 48  # Shapes: float32 image and coordinate grids of one image
MAX_IMAGE_PIXELS = 4096 * 4096  # a larger image file is refused by name (PIL allows 89 M)


def available_memory(device: torch.device | None = None) -> int | None:
    """Bytes free on ``device`` (a GPU's free memory; default the CPU's MemAvailable), or
    None when the system does not say."""
    if device is not None and device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def check_memory(need: int, free: int | None, what: str, fix: str) -> None:
    """A ValueError when ``need`` bytes (for ``what``) exceed ``free``."""
    if free is not None and need > free:
        raise ValueError(f"{what} needs at least {need / 2**30:.1f} GiB of memory, but "
                         f"{free / 2**30:.1f} GiB is available; {fix}")


def check_run_memory(config: TrainConfig, device: torch.device) -> None:
    """Refuse a config whose crops, or (Shapes, the probes) generated and evaluated images, cannot
    fit."""
    free = available_memory(device)
    batch, crop = config.batch_size, config.crop
    check_memory(batch * crop * crop * TRAIN_BYTES_PER_PIXEL, free,
                 f"training a batch of {batch} crops of {crop}x{crop}",
                 "lower crop (--set crop=...) or --batch-size")
    from .data.sources import GENERATED  # rnlib.data imports this module

    side = config.data_options.get("size") if config.dataset in GENERATED else None
    if isinstance(side, int) and side > 0:
        check_memory(side * side * max(GENERATE_BYTES_PER_PIXEL, batch * EVAL_BYTES_PER_PIXEL),
                     free, f"{config.dataset} images of {side}x{side} (generated, then "
                           f"evaluated whole in batches of {batch})",
                     "lower the image size (data_options size, --size)")
