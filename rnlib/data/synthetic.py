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
from functools import lru_cache

import numpy as np

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


@lru_cache(maxsize=8)
def _interpolation(size: int, cells: int) -> np.ndarray:
    """(size, cells + 1) weights of linear interpolation from a coarse grid to ``size`` pixels."""
    t = np.linspace(0, cells, size, endpoint=False)
    weights = np.zeros((size, cells + 1), np.float32)
    weights[np.arange(size), t.astype(int)] = 1 - (t - t.astype(int))
    weights[np.arange(size), t.astype(int) + 1] = t - t.astype(int)
    return weights


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Low-frequency noise in [0, 1]: a random cells x cells grid, bilinearly upsampled."""
    w = _interpolation(size, cells)
    return w @ rng.random((cells + 1, cells + 1), dtype=np.float32) @ w.T  # (size, size)


def _colour(rng: np.random.Generator, avoid: np.ndarray | None = None) -> np.ndarray:
    """A random RGB colour in [0, 1]; with ``avoid``, one that stands out from that colour."""
    colour = rng.uniform(0.05, 0.95, size=3).astype(np.float32)
    while avoid is not None and ((colour - avoid) ** 2).sum() < 0.16:
        colour = rng.uniform(0.05, 0.95, size=3).astype(np.float32)
    return colour


def _window(centre_y: float, centre_x: float, reach: float, n: int) -> tuple[slice, slice]:
    """The rows and columns within ``reach`` of a point, clipped to the image."""
    def span(c: float) -> slice:
        return slice(max(0, int(c - reach)), min(n, int(np.ceil(c + reach)) + 1))
    return span(centre_y), span(centre_x)


def _background(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """A textured (n, n, 3) background, two random colours mixed by smooth noise plus a finer
    mottling, and its mean colour."""
    mix = _smooth_noise(rng, n, 4)[..., None] * 0.7 + _smooth_noise(rng, n, 16)[..., None] * 0.3
    bg_a, bg_b = _colour(rng), _colour(rng)
    return (bg_a * (1 - mix) + bg_b * mix).astype(np.float32), (bg_a + bg_b) / 2


@dataclass(frozen=True)
class _Stripes:
    """One image's stripe texture: every disc and box of the image is filled with it."""

    theta: float
    period: float
    colours: np.ndarray  # (2, 3)

    @classmethod
    def draw(cls, rng: np.random.Generator, scale: float) -> _Stripes:
        theta, period = rng.uniform(0, np.pi), rng.uniform(4, 9) * scale
        return cls(theta, period, np.stack([_colour(rng), _colour(rng)]))

    def paint(self, image: np.ndarray, win: tuple[slice, slice], inside: np.ndarray,
              y: np.ndarray, x: np.ndarray) -> None:
        """Fill the pixels ``inside`` the window ``win`` (coordinates ``y``, ``x``)."""
        phase = (x[inside] * np.cos(self.theta) + y[inside] * np.sin(self.theta)) / self.period
        image[win][inside] = self.colours[(np.sin(2 * np.pi * phase) > 0).astype(int)]


def _segment(yy: np.ndarray, xx: np.ndarray, p0: np.ndarray, p1: np.ndarray, width: float
             ) -> tuple[tuple[slice, slice], np.ndarray]:
    """The window around the segment ``p0``-``p1`` (y, x) and, in it, the pixels whose centre
    is within ``width / 2`` of the segment: a line ``width`` pixels wide."""
    (y0, x0), (y1, x1) = p0, p1
    win = (slice(int(min(y0, y1) - width), int(max(y0, y1) + width) + 2),
           slice(int(min(x0, x1) - width), int(max(x0, x1) + width) + 2))
    win = tuple(slice(max(0, w.start), w.stop) for w in win)
    y, x = yy[win], xx[win]
    dy, dx = y1 - y0, x1 - x0
    t = np.clip(((y - y0) * dy + (x - x0) * dx) / (dy * dy + dx * dx + 1e-6), 0, 1)
    return win, (y - y0 - t * dy) ** 2 + (x - x0 - t * dx) ** 2 <= (width / 2) ** 2


def _finish(image: np.ndarray, rng: np.random.Generator, noise: float) -> np.ndarray:
    """Uniform per-pixel noise of standard deviation ``noise``, then uint8."""
    image += (rng.random(image.shape, dtype=np.float32) - 0.5) * (noise * 12**0.5)
    return (np.clip(image, 0, 1) * 255).astype(np.uint8)


def make_sample(seed: int, index: int, config: ShapesConfig = ShapesConfig()
                ) -> tuple[np.ndarray, np.ndarray]:
    """Image ``index`` of dataset ``seed``: (H, W, 3) uint8 image, (H, W) uint8 class mask."""
    rng = np.random.default_rng([seed, index])
    n = config.size
    scale = n / 128
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
    image, mean_bg = _background(rng, n)
    mask = np.zeros((n, n), np.uint8)

    # discs and boxes: one stripe texture per image, shared by both classes
    stripes = _Stripes.draw(rng, scale)
    for _ in range(rng.integers(1, config.max_big + 1)):
        r = rng.uniform(14, 30) * scale
        cy, cx = rng.uniform(0, n, size=2)
        win = _window(cy, cx, r, n)
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
        win, on = _segment(yy, xx, p0, p1, rng.uniform(1, 3) * scale)
        image[win][on] = _colour(rng, avoid=mean_bg)
        mask[win][on] = 3

    # small dots: 3-6 px squares with a two-colour checker
    for _ in range(rng.integers(1, config.max_dots + 1)):
        side = int(round(rng.uniform(3, 6) * scale))
        y, x = rng.integers(0, n - side, size=2)
        win = (slice(y, y + side), slice(x, x + side))
        image[win] = _colour(rng, avoid=mean_bg)
        image[win][(yy[win] + xx[win]) % 2 == 0] = _colour(rng, avoid=mean_bg)
        mask[win] = 4

    return _finish(image, rng, config.noise), mask


def make_samples(seed: int, count: int, config: ShapesConfig = ShapesConfig(), start: int = 0
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Images ``start .. start + count - 1``: arrays (count, H, W, 3) and (count, H, W)."""
    pairs = [make_sample(seed, i, config) for i in range(start, start + count)]
    return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])
