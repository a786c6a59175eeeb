"""Glyphs: a procedural CLASSIFICATION dataset on which the course's backbone is pretrained.

RefineNet fine-tunes an ImageNet-pretrained ResNet (Lin et al., §4). ImageNet cannot be
downloaded offline, so the course pretrains its ResNet-18 on this generator instead: a task
other than Shapes segmentation, from a generator of its own, that teaches what ImageNet
features give a segmentation network — edges, textures, outlines and thin structures.

Each image holds one large glyph (its class: one of :data:`GLYPHS`, drawn at a random size,
position and rotation) filled with one random texture (stripes, checks, mottled noise, spots
or a gradient) over a background with another, plus unlabelled distractors (thin lines, small
squares). Colours are drawn anew per image, so only the outline tells the class. Image ``i``
of seed ``s`` comes from its own generator ``default_rng([s, i])``.
"""

from __future__ import annotations

import numpy as np

from .drawing import colour, segment, smooth_noise

__all__ = ["GLYPHS", "make_glyph", "make_glyphs"]

GLYPHS = ("disc", "ring", "square", "triangle", "hexagon", "star", "cross", "crescent",
          "ellipse", "half-disc")


def _inside(glyph: str, y: np.ndarray, x: np.ndarray, r: float, theta: float) -> np.ndarray:
    """Pixels inside ``glyph`` of radius ``r``, rotated by ``theta``; (y, x) are offsets from
    its centre."""
    c, s = np.cos(theta), np.sin(theta)
    u, v = c * x + s * y, -s * x + c * y  # coordinates in the glyph's own frame
    d = np.hypot(u, v)
    if glyph == "disc":
        return d <= r
    if glyph == "ring":
        return np.abs(d - 0.75 * r) <= 0.25 * r
    if glyph in ("square", "triangle", "hexagon"):
        n = {"square": 4, "triangle": 3, "hexagon": 6}[glyph]
        angles = 2 * np.pi * np.arange(n) / n
        faces = np.stack([u * np.cos(a) + v * np.sin(a) for a in angles])
        return faces.max(0) <= r * np.cos(np.pi / n)
    if glyph == "star":
        phi = np.arctan2(v, u)
        return d <= r * (0.45 + 0.55 * np.abs(np.cos(2.5 * phi)) ** 2)
    if glyph == "cross":
        return ((np.abs(u) <= 0.3 * r) | (np.abs(v) <= 0.3 * r)) & (np.maximum(
            np.abs(u), np.abs(v)) <= r)
    if glyph == "crescent":
        return (d <= r) & (np.hypot(u - 0.5 * r, v) > 0.8 * r)
    if glyph == "ellipse":
        return (u / r) ** 2 + (v / (0.5 * r)) ** 2 <= 1
    if glyph == "half-disc":
        return (d <= r) & (v >= 0)
    raise ValueError(f"unknown glyph {glyph!r}")


def _texture(rng: np.random.Generator, n: int, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    """An (n, n, 3) texture in [0, 1]: stripes, checks, mottled noise, spots or a gradient."""
    a, b = colour(rng), colour(rng, avoid=None)
    kind = rng.integers(5)
    theta, period = rng.uniform(0, np.pi), rng.uniform(3, 10) * n / 96
    u = xx * np.cos(theta) + yy * np.sin(theta)
    if kind == 0:  # stripes
        mix = (np.sin(2 * np.pi * u / period) > 0).astype(np.float32)
    elif kind == 1:  # checks
        v = -xx * np.sin(theta) + yy * np.cos(theta)
        mix = ((np.floor(u / period) + np.floor(v / period)) % 2).astype(np.float32)
    elif kind == 2:  # mottled
        mix = smooth_noise(rng, n, int(rng.integers(3, 12)))
    elif kind == 3:  # spots
        mix = ((np.sin(2 * np.pi * xx / period) * np.sin(2 * np.pi * yy / period)) > 0.5)
        mix = mix.astype(np.float32)
    else:  # gradient
        mix = (u - u.min()) / max(float(np.ptp(u)), 1e-6)
    return a * (1 - mix[..., None]) + b * mix[..., None]


def make_glyph(seed: int, index: int, size: int = 96) -> tuple[np.ndarray, int]:
    """Image ``index`` of dataset ``seed``: an (size, size, 3) uint8 image and its class."""
    rng = np.random.default_rng([seed, index])
    n = size
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
    label = int(rng.integers(len(GLYPHS)))
    image = _texture(rng, n, yy, xx)
    r = rng.uniform(0.18, 0.4) * n
    cy, cx = rng.uniform(0.3 * n, 0.7 * n, size=2)
    inside = _inside(GLYPHS[label], yy - cy, xx - cx, r, rng.uniform(0, 2 * np.pi))
    image[inside] = _texture(rng, n, yy, xx)[inside]
    for _ in range(rng.integers(0, 4)):  # thin lines over everything
        p0, p1 = rng.uniform(0, n, size=(2, 2))
        win, on = segment(yy, xx, p0, p1, 2 * rng.uniform(0.5, 1.5))
        image[win][on] = colour(rng)
    for _ in range(rng.integers(0, 5)):  # small squares
        side = int(rng.integers(2, 6))
        y, x = rng.integers(0, n - side, size=2)
        image[y:y + side, x:x + side] = colour(rng)
    image += (rng.random(image.shape, dtype=np.float32) - 0.5) * 0.2
    return (np.clip(image, 0, 1) * 255).astype(np.uint8), label


def make_glyphs(seed: int, count: int, size: int = 96, start: int = 0
                ) -> tuple[np.ndarray, np.ndarray]:
    """Images ``start .. start + count - 1``: (count, size, size, 3) uint8 and (count,) int64."""
    pairs = [make_glyph(seed, i, size) for i in range(start, start + count)]
    return np.stack([p[0] for p in pairs]), np.array([p[1] for p in pairs], np.int64)
