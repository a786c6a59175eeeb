"""Drawing helpers for the course's procedural images (Shapes, the probes, Glyphs): textured
backgrounds, random colours, stripe textures, line segments and the final noise. Each takes the
image's own ``numpy`` generator, so an image is a function of its seed alone."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

__all__ = ["interpolation", "smooth_noise", "colour", "window", "background", "Stripes",
           "segment", "finish"]


@lru_cache(maxsize=8)
def interpolation(size: int, cells: int) -> np.ndarray:
    """(size, cells + 1) weights of linear interpolation from a coarse grid to ``size`` pixels."""
    t = np.linspace(0, cells, size, endpoint=False)
    weights = np.zeros((size, cells + 1), np.float32)
    weights[np.arange(size), t.astype(int)] = 1 - (t - t.astype(int))
    weights[np.arange(size), t.astype(int) + 1] = t - t.astype(int)
    return weights


def smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Low-frequency noise in [0, 1]: a random cells x cells grid, bilinearly upsampled."""
    w = interpolation(size, cells)
    return w @ rng.random((cells + 1, cells + 1), dtype=np.float32) @ w.T  # (size, size)


def colour(rng: np.random.Generator, avoid: np.ndarray | None = None) -> np.ndarray:
    """A random RGB colour in [0, 1]; with ``avoid``, one that stands out from that colour."""
    rgb = rng.uniform(0.05, 0.95, size=3).astype(np.float32)
    while avoid is not None and ((rgb - avoid) ** 2).sum() < 0.16:
        rgb = rng.uniform(0.05, 0.95, size=3).astype(np.float32)
    return rgb


def window(centre_y: float, centre_x: float, reach: float, n: int) -> tuple[slice, slice]:
    """The rows and columns within ``reach`` of a point, clipped to the image."""
    def span(c: float) -> slice:
        return slice(max(0, int(c - reach)), min(n, int(np.ceil(c + reach)) + 1))
    return span(centre_y), span(centre_x)


def background(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """A textured (n, n, 3) background, two random colours mixed by smooth noise plus a finer
    mottling, and its mean colour."""
    mix = smooth_noise(rng, n, 4)[..., None] * 0.7 + smooth_noise(rng, n, 16)[..., None] * 0.3
    bg_a, bg_b = colour(rng), colour(rng)
    return (bg_a * (1 - mix) + bg_b * mix).astype(np.float32), (bg_a + bg_b) / 2


@dataclass(frozen=True)
class Stripes:
    """One image's stripe texture: every disc and box of the image is filled with it."""

    theta: float
    period: float
    colours: np.ndarray  # (2, 3)

    @classmethod
    def draw(cls, rng: np.random.Generator, scale: float) -> Stripes:
        theta, period = rng.uniform(0, np.pi), rng.uniform(4, 9) * scale
        return cls(theta, period, np.stack([colour(rng), colour(rng)]))

    def paint(self, image: np.ndarray, win: tuple[slice, slice], inside: np.ndarray,
              y: np.ndarray, x: np.ndarray) -> None:
        """Fill the pixels ``inside`` the window ``win`` (coordinates ``y``, ``x``)."""
        phase = (x[inside] * np.cos(self.theta) + y[inside] * np.sin(self.theta)) / self.period
        image[win][inside] = self.colours[(np.sin(2 * np.pi * phase) > 0).astype(int)]


def segment(yy: np.ndarray, xx: np.ndarray, p0: np.ndarray, p1: np.ndarray, width: float
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


def finish(image: np.ndarray, rng: np.random.Generator, noise: float) -> np.ndarray:
    """Uniform per-pixel noise of standard deviation ``noise``, then uint8."""
    image += (rng.random(image.shape, dtype=np.float32) - 0.5) * (noise * 12**0.5)
    return (np.clip(image, 0, 1) * 255).astype(np.uint8)
