"""Probe datasets: one per claim of RefineNet (Lin et al., §1, §3), each drawn so that a single
property varies, and every image holds one value of it (its *bin*), so that IoU can be
reported bin by bin on the images of that bin.

- ``detail``: lines 1, 2 or 4 px wide on a textured background (classes background, line):
  the detail that a 1/8 or 1/32 output loses (multi-path refinement, §3.1);
- ``context``: discs and boxes of radius 12, 24 or 48 px, filled with the same texture and of
  the same area, so that only their outline tells them apart: a pixel deep inside a large one
  needs context from far away (chained residual pooling, §3.2);
- ``scale``: the same discs and boxes, 4 to 64 px across, in four size bins (the cascades,
  §4.3).

Geometry is in pixels whatever the image ``size``. Image ``i`` of seed ``s`` is drawn from its
own generator, as in :mod:`rnlib.data.synthetic` (whose background, texture and lines these
reuse), and falls in bin ``i % len(BINS[probe])``.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from .drawing import Stripes, background, colour, finish, segment, window

__all__ = ["PROBES", "CLASSES", "PALETTE", "BINS", "WIDTHS", "RADII", "SIZES", "MIN_SIZE",
           "check_options", "bin_of", "make_sample", "make_samples"]

PROBES = ("detail", "context", "scale")
CLASSES = {"detail": ("background", "line"), "context": ("background", "disc", "box"),
           "scale": ("background", "disc", "box")}
PALETTE = ((0, 0, 0), (230, 25, 75), (60, 180, 75))
WIDTHS = (1, 2, 4)  # detail: line widths, px
RADII = (12, 24, 48)  # context: radii, px
SIZES = ((4, 8), (8, 16), (16, 32), (32, 64))  # scale: diameter (a box's side) ranges, px
BINS = {"detail": tuple(f"{w} px" for w in WIDTHS),
        "context": tuple(f"r {r} px" for r in RADII),
        "scale": tuple(f"{lo}-{hi} px" for lo, hi in SIZES)}
MIN_SIZE = 32
NOISE = 0.06  # as Shapes
COVER = 0.3  # the share of the image that the discs and boxes of one image aim to cover
MAX_OBJECTS = 32
GAP = 2  # px between two objects


def check_options(probe: str, size: int, count: int) -> None:
    """Raise one clear ValueError for an unknown probe, a size or a count out of range."""
    if probe not in PROBES:
        raise ValueError(f"unknown probe {probe!r}; choose one of {', '.join(PROBES)}")
    if isinstance(size, bool) or not isinstance(size, int) or not MIN_SIZE <= size <= 1024:
        raise ValueError(f"probe-{probe}'s size must be a whole number of pixels from {MIN_SIZE} "
                         f"to 1024 (its lines and objects are drawn in pixels), got {size!r}")
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"probe-{probe}'s count must be a whole number >= 1, got {count!r}")


def bin_of(probe: str, index: int) -> int:
    """The bin of image ``index``: the position in ``BINS[probe]`` of its width, radius or
    size."""
    return index % len(BINS[probe])


@lru_cache(maxsize=4)
def _grid(n: int) -> np.ndarray:
    """(2, n, n) pixel coordinates y, x (read only: shared between images)."""
    grid = np.mgrid[0:n, 0:n].astype(np.float32)
    grid.flags.writeable = False
    return grid


def _lines(rng: np.random.Generator, image: np.ndarray, mask: np.ndarray, mean_bg: np.ndarray,
           width: float) -> None:
    """3 to 6 segments ``width`` px wide, each in a colour that stands out from the
    background, labelled 1."""
    n = mask.shape[0]
    yy, xx = _grid(n)
    for _ in range(rng.integers(3, 7)):
        p0, p1 = rng.uniform(0, n, size=(2, 2))
        win, on = segment(yy, xx, p0, p1, width)
        image[win][on] = colour(rng, avoid=mean_bg)
        mask[win][on] = 1


def _blobs(rng: np.random.Generator, image: np.ndarray, mask: np.ndarray,
           radius: tuple[float, float]) -> None:
    """Discs (1) and boxes (2) of the same area (a box's half side is ``r * sqrt(pi) / 2``),
    radius ``r`` log-uniform in ``radius``, filled with one stripe texture, not touching each
    other: as many as cover about ``COVER`` of the image (at most ``MAX_OBJECTS``)."""
    n = mask.shape[0]
    yy, xx = _grid(n)
    stripes = Stripes.draw(rng, 1.0)
    mean_r = float(np.sqrt(radius[0] * radius[1]))
    wanted = int(np.clip(round(COVER * n * n / (np.pi * mean_r**2)), 1, MAX_OBJECTS))
    placed = 0
    for _ in range(4 * wanted):
        if placed == wanted:
            break
        r = float(np.exp(rng.uniform(np.log(radius[0]), np.log(radius[1]))))
        cy, cx = (rng.uniform(r, n - r, size=2) if n > 2 * r else np.full(2, n / 2))
        if mask[window(cy, cx, r + GAP, n)].any():
            continue  # it would touch an object already there
        win = window(cy, cx, r, n)
        y, x = yy[win], xx[win]
        if rng.random() < 0.5:
            inside, label = (y - cy) ** 2 + (x - cx) ** 2 <= r**2, 1
        else:
            half = r * np.sqrt(np.pi) / 2
            inside, label = (np.abs(y - cy) <= half) & (np.abs(x - cx) <= half), 2
        stripes.paint(image, win, inside, y, x)
        mask[win][inside] = label
        placed += 1


def make_sample(probe: str, seed: int, index: int, size: int = 128
                ) -> tuple[np.ndarray, np.ndarray]:
    """Image ``index`` of probe dataset ``probe`` and seed ``seed``: (H, W, 3) uint8 image,
    (H, W) uint8 class mask (:data:`CLASSES`); its bin is :func:`bin_of`."""
    check_options(probe, size, 1)
    rng = np.random.default_rng([seed, index, 1 + PROBES.index(probe)])  # not Shapes' images
    image, mean_bg = background(rng, size)
    mask = np.zeros((size, size), np.uint8)
    b = bin_of(probe, index)
    if probe == "detail":
        _lines(rng, image, mask, mean_bg, WIDTHS[b])
    elif probe == "context":
        _blobs(rng, image, mask, (RADII[b], RADII[b]))
    else:
        _blobs(rng, image, mask, (SIZES[b][0] / 2, SIZES[b][1] / 2))
    return finish(image, rng, NOISE), mask


def make_samples(probe: str, seed: int, count: int, size: int = 128, start: int = 0
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Images ``start .. start + count - 1``: arrays (count, H, W, 3) and (count, H, W)."""
    check_options(probe, size, count)
    pairs = [make_sample(probe, seed, i, size) for i in range(start, start + count)]
    return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])
