"""Shapes: the course's offline segmentation dataset, made procedurally from a seed.

It rewards exactly what RefineNet adds over FCNs and dilated networks (Lin et al., §1):

- ``disc`` and ``box`` are filled with the SAME texture and differ only by their outline, and
  they are large (radius 14-30 px at 128x128): a pixel deep inside one can only be told by
  context wider than a local window (receptive field, chained residual pooling);
- ``line`` is 1-3 px wide and ``dot`` is 3-6 px: detail that a 1/32 or 1/8 output loses
  (multi-path refinement from high-resolution features);
- colours are drawn anew for every image and the background is textured too, so colour alone
  solves nothing.

Image ``i`` of seed ``s`` is drawn from its own generator ``default_rng([s, i])``: any subset can
be regenerated exactly, in any order. About 3,000 images a second on one core at 128x128.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .drawing import Stripes, background, colour, finish, segment, window

__all__ = ["CLASSES", "PALETTE", "ShapesConfig", "make_sample", "make_samples"]

CLASSES = ("background", "disc", "box", "line", "dot")
PALETTE = ((0, 0, 0), (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200))


@dataclass(frozen=True)
class ShapesConfig:
    """How the images are drawn; ``size`` is the side in pixels (object sizes scale with it)."""

    size: int = 128
    max_big: int = 3  # discs and boxes per image: 1..max_big
    max_lines: int = 3
    max_dots: int = 6
    noise: float = 0.06  # std of the uniform per-pixel noise, in [0, 1] intensity units


def make_sample(seed: int, index: int, config: ShapesConfig = ShapesConfig()
                ) -> tuple[np.ndarray, np.ndarray]:
    """Image ``index`` of dataset ``seed``: (H, W, 3) uint8 image, (H, W) uint8 class mask."""
    rng = np.random.default_rng([seed, index])
    n = config.size
    scale = n / 128
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
    image, mean_bg = background(rng, n)
    mask = np.zeros((n, n), np.uint8)

    # discs and boxes: one stripe texture per image, shared by both classes
    stripes = Stripes.draw(rng, scale)
    for _ in range(rng.integers(1, config.max_big + 1)):
        r = rng.uniform(14, 30) * scale
        cy, cx = rng.uniform(0, n, size=2)
        win = window(cy, cx, r, n)
        y, x = yy[win], xx[win]
        if rng.random() < 0.5:
            inside, label = (y - cy) ** 2 + (x - cx) ** 2 <= r**2, 1
        else:
            inside, label = (np.abs(y - cy) <= r * 0.9) & (np.abs(x - cx) <= r * 0.9), 2
        stripes.paint(image, win, inside, y, x)
        mask[win][inside] = label

    # thin lines: 1-3 px wide segments in a colour that stands out from the background
    for _ in range(rng.integers(1, config.max_lines + 1)):
        p0, p1 = rng.uniform(0, n, size=(2, 2))
        win, on = segment(yy, xx, p0, p1, rng.uniform(1, 3) * scale)
        image[win][on] = colour(rng, avoid=mean_bg)
        mask[win][on] = 3

    # small dots: 3-6 px squares with a two-colour checker
    for _ in range(rng.integers(1, config.max_dots + 1)):
        side = int(round(rng.uniform(3, 6) * scale))
        y, x = rng.integers(0, n - side, size=2)
        win = (slice(y, y + side), slice(x, x + side))
        image[win] = colour(rng, avoid=mean_bg)
        image[win][(yy[win] + xx[win]) % 2 == 0] = colour(rng, avoid=mean_bg)
        mask[win] = 4

    return finish(image, rng, config.noise), mask


def make_samples(seed: int, count: int, config: ShapesConfig = ShapesConfig(), start: int = 0
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Images ``start .. start + count - 1``: arrays (count, H, W, 3) and (count, H, W)."""
    pairs = [make_sample(seed, i, config) for i in range(start, start + count)]
    return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])
