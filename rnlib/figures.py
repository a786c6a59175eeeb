"""The paper's architecture drawings, redrawn by code and labelled with rnlib's classes.

:func:`figure2` draws the multi-path 4-cascade (Lin et al., §3.1, Fig. 2c), :func:`figure3` a
RefineNet block and close-ups of its parts (§3.2, Fig. 3). Each box names the rnlib class that
computes it, and ``highlight`` colours one part, the one a notebook builds::

    from rnlib import figures
    figures.figure3(highlight="RCU")      # notebook 03: the RCUs and the RCU close-up

Every box is a patch whose ``gid`` lists its parts ("RCU,block"), so that tests can find it.
"""

from __future__ import annotations

from collections.abc import Iterable

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.patches import FancyBboxPatch, Rectangle

__all__ = ["FIGURE2_PARTS", "FIGURE3_PARTS", "HIGHLIGHT", "figure2", "figure3",
           "figure_decoders"]

FIGURE2_PARTS = ("backbone", "block", "decoder", "prediction")
FIGURE3_PARTS = ("RCU", "fusion", "CRP", "output", "block")
PLAIN, HIGHLIGHT, EDGE = "#e8eef7", "#f6b26b", "#34495e"
DECODER = "rnlib.models.refinenet.RefineNetDecoder"


def _check(highlight: str | None, parts: tuple[str, ...]) -> None:
    if highlight is not None and highlight not in parts:
        raise ValueError(f"unknown part {highlight!r} to highlight; choose one of "
                         f"{', '.join(parts)} (or None)")


def _box(ax: Axes, xy: tuple[float, float], size: tuple[float, float], title: str,
         label: str = "", parts: Iterable[str] = (), highlight: str | None = None) -> None:
    """A rounded box with a title and, under it, the rnlib class that computes it."""
    parts = tuple(parts)
    lit = highlight is not None and highlight in parts
    patch = FancyBboxPatch(xy, *size, boxstyle="round,pad=0.02,rounding_size=0.08",
                           facecolor=HIGHLIGHT if lit else PLAIN, edgecolor=EDGE,
                           linewidth=2.2 if lit else 1.0, zorder=2)
    patch.set_gid(",".join(parts))  # every part it belongs to: a block's RCUs are "RCU,block"
    ax.add_patch(patch)
    x, y = xy[0] + size[0] / 2, xy[1] + size[1] / 2
    if label:
        ax.text(x, y + 0.12, title, ha="center", va="center", fontsize=8, zorder=3)
        ax.text(x, y - 0.17, label, ha="center", va="center", fontsize=6.5, zorder=3,
                family="monospace", color="#1f3a5f")
    else:
        ax.text(x, y, title, ha="center", va="center", fontsize=8, zorder=3)


def _frame(ax: Axes, xy: tuple[float, float], size: tuple[float, float], label: str,
           parts: Iterable[str] = (), highlight: str | None = None) -> None:
    """A dashed rectangle around the boxes of one rnlib module, named at its top left."""
    lit = highlight is not None and highlight in tuple(parts)
    frame = Rectangle(xy, *size, fill=False, linestyle="--", linewidth=1.6 if lit else 0.9,
                      edgecolor="#d35400" if lit else "#7f8c8d", zorder=1)
    frame.set_gid(f"frame:{label}")
    ax.add_patch(frame)
    ax.text(xy[0] + 0.05, xy[1] + size[1] + 0.08, label, fontsize=7, family="monospace",
            color="#1f3a5f", va="bottom")


def _arrow(ax: Axes, start: tuple[float, float], end: tuple[float, float], text: str = "",
           style: str = "-|>") -> None:
    ax.annotate("", end, start, zorder=1,
                arrowprops={"arrowstyle": style, "color": EDGE, "lw": 1.0,
                            "shrinkA": 0, "shrinkB": 0})
    if text:
        ax.text((start[0] + end[0]) / 2, (start[1] + end[1]) / 2 + 0.08, text, fontsize=6.5,
                ha="center", va="bottom", color="#555555")


def _sum(ax: Axes, xy: tuple[float, float]) -> None:
    ax.add_patch(plt.Circle(xy, 0.16, facecolor="white", edgecolor=EDGE, zorder=2))
    ax.text(*xy, "+", ha="center", va="center", fontsize=10, zorder=3)


def _canvas(ax: Axes, width: float, height: float, title: str) -> None:
    ax.set_xlim(0, width)
    ax.set_ylim(0, height)
    ax.set_aspect("equal")
    ax.set_axis_off()
    ax.set_title(title, fontsize=9, loc="left")


def figure2(highlight: str | None = None) -> plt.Figure:
    """The multi-path 4-cascade (§3.1, Fig. 2c): ResNet stages at 1/4..1/32, RefineNet-4..1
    coarsest first, the prediction at 1/4. ``highlight``: one of :data:`FIGURE2_PARTS`."""
    _check(highlight, FIGURE2_PARTS)
    fig, ax = plt.subplots(figsize=(10, 5.6))
    _canvas(ax, 11.2, 6.3, "RefineNet, 4-cascade (Fig. 2c): rnlib.build_model(\"refinenet\")")
    _box(ax, (0.1, 4.6), (1.5, 0.8), "image", "H x W")
    stage_w, block_x, block_w = 2.0, 5.1, 2.2
    ys = [4.6, 3.4, 2.2, 1.0]  # 1/4 at the top, 1/32 at the bottom
    for i, y in enumerate(ys):
        _box(ax, (2.3, y), (stage_w, 0.8), f"layer{i + 1} · 1/{4 * 2 ** i}", "",
             ["backbone"], highlight)
        _box(ax, (block_x, y), (block_w, 0.8), f"RefineNet-{i + 1}", "RefineNetBlock",
             ["block", "decoder"], highlight)
        _arrow(ax, (2.3 + stage_w, y + 0.4), (block_x, y + 0.4))
        if i:
            _arrow(ax, (2.3 + stage_w / 2, ys[i - 1]), (2.3 + stage_w / 2, y + 0.8))
            _arrow(ax, (block_x + block_w / 2, y + 0.8), (block_x + block_w / 2, ys[i - 1]))
    _arrow(ax, (1.6, 5.0), (2.3, 5.0), "stem")
    _frame(ax, (2.1, 0.85), (2.4, 4.95), "rnlib.backbones.ResNetBackbone", ["backbone"],
           highlight)
    _box(ax, (8.0, 4.6), (2.3, 0.8), "classifier · 1/4", "3x3 conv -> K scores",
         ["prediction", "decoder"], highlight)
    _arrow(ax, (block_x + block_w, 5.0), (8.0, 5.0))
    _frame(ax, (4.9, 0.85), (5.6, 4.95), DECODER, ["decoder"], highlight)
    _box(ax, (8.0, 2.2), (2.3, 0.8), "prediction · H x W", "bilinear resize",
         ["prediction"], highlight)
    _arrow(ax, (9.15, 4.6), (9.15, 3.0))
    ax.text(8.0, 1.95, "rnlib.models.SegmentationModel:\nbackbone, decoder, resize",
            fontsize=6.5, family="monospace", color="#1f3a5f", va="top")
    ax.text(0.1, 0.45, "Each arrow from a stage is a 3x3 convolution that sets the path's width "
            "(RefineNetDecoder.adapt).", fontsize=7, color="#555555")
    ax.text(0.1, 0.15, "Long-range residual connections (§3.3): each stage reaches the output "
            "through its block's sums, not only through the coarser stages.", fontsize=7,
            color="#555555")
    fig.tight_layout()
    return fig


def _block_overview(ax: Axes, highlight: str | None) -> None:
    """Fig. 3a: RCUs per path -> fusion -> chained residual pooling -> output RCUs."""
    _canvas(ax, 12.4, 4.0, "(a) RefineNet block (Fig. 3a)")
    for y, text in [(2.6, "path from the backbone\n(e.g. layer2 · 1/8)"),
                    (0.6, "path from RefineNet-(k+1)\n(1/16)")]:
        ax.text(0.05, y + 0.4, text, fontsize=7, va="center")
        _arrow(ax, (1.9, y + 0.4), (2.3, y + 0.4))
        _box(ax, (2.3, y), (2.1, 0.8), "RCU x2", "blocks.RCU", ["RCU", "block"], highlight)
        _arrow(ax, (4.4, y + 0.4), (5.0, y + 0.4))
    _box(ax, (5.0, 0.6), (2.2, 2.8), "Multi-Resolution\nFusion", "", ["fusion", "block"],
         highlight)
    ax.text(6.1, 0.9, "MultiResolution-\nFusion", fontsize=6.5, family="monospace",
            ha="center", color="#1f3a5f", zorder=3)
    _arrow(ax, (7.2, 2.0), (7.6, 2.0))
    _box(ax, (7.6, 1.2), (2.3, 1.6), "Chained Residual\nPooling", "", ["CRP", "block"],
         highlight)
    ax.text(8.75, 1.3, "ChainedResidual-\nPooling", fontsize=6.5, family="monospace",
            ha="center", color="#1f3a5f", va="bottom", zorder=3)
    _arrow(ax, (9.9, 2.0), (10.2, 2.0))
    _box(ax, (10.2, 1.6), (1.6, 0.8), "output: RCU x3", "blocks.RCU",
         ["output", "RCU", "block"], highlight)
    _arrow(ax, (11.8, 2.0), (12.35, 2.0))
    _frame(ax, (2.15, 0.35), (9.85, 3.3), "rnlib.blocks.RefineNetBlock", ["block"], highlight)
    ax.text(2.2, 0.05, "rnlib's cascade, as the released code: no RCUs on the path from the "
            "previous block (its output RCUs refined it)", fontsize=6.5, color="#555555")


def _rcu_closeup(ax: Axes, highlight: str | None) -> None:
    """Fig. 3b: x + conv(relu(conv(relu(x)))), no batch normalisation."""
    _canvas(ax, 4.0, 6.8, "(b) RCU: rnlib.blocks.RCU")
    steps = ["ReLU", "3x3 conv", "ReLU", "3x3 conv"]
    ax.text(1.4, 6.45, "x", ha="center", fontsize=9)
    _arrow(ax, (1.4, 6.3), (1.4, 5.8))
    for i, step in enumerate(steps):
        y = 5.0 - i * 1.05
        _box(ax, (0.6, y), (1.6, 0.75), step, "", ["RCU"], highlight)
        _arrow(ax, (1.4, y), (1.4, y - 0.3 if i < len(steps) - 1 else 0.91))
    _sum(ax, (1.4, 0.75))
    ax.plot([1.4, 3.2, 3.2], [6.15, 6.15, 0.75], color=EDGE, lw=1.0)
    _arrow(ax, (3.2, 0.75), (1.56, 0.75))
    ax.text(3.3, 3.4, "identity\nshortcut", fontsize=7, rotation=90, va="center")
    _arrow(ax, (1.4, 0.59), (1.4, 0.1))


def _fusion_closeup(ax: Axes, highlight: str | None) -> None:
    """Fig. 3c: a convolution per path, upsampling to the largest size, a sum."""
    _canvas(ax, 4.0, 6.8, "(c) fusion: MultiResolutionFusion")
    for x, side, up in [(0.2, "1/8", ""), (2.1, "1/16", "upsample x2")]:
        ax.text(x + 0.8, 6.45, side, ha="center", fontsize=8)
        _arrow(ax, (x + 0.8, 6.3), (x + 0.8, 5.8))
        _box(ax, (x, 5.0), (1.6, 0.75), "3x3 conv", "", ["fusion"], highlight)
        if up:
            _arrow(ax, (x + 0.8, 5.0), (x + 0.8, 3.75))
            _box(ax, (x, 3.0), (1.6, 0.75), up, "", ["fusion"], highlight)
            _arrow(ax, (x + 0.8, 3.0), (2.14, 1.85))
        else:
            _arrow(ax, (x + 0.8, 5.0), (1.86, 1.85))
    _sum(ax, (2.0, 1.7))
    ax.text(2.3, 1.1, "resized to the largest\ninput's size, summed", fontsize=7, va="top")
    _arrow(ax, (2.0, 1.54), (2.0, 0.1))


def _crp_closeup(ax: Axes, highlight: str | None) -> None:
    """Fig. 3d: ReLU, then a chain of pool -> conv blocks, every block's output summed."""
    _canvas(ax, 4.0, 6.8, "(d) CRP: ChainedResidualPooling")
    ax.text(1.2, 6.45, "x", ha="center", fontsize=9)
    _arrow(ax, (1.2, 6.3), (1.2, 6.0))
    _box(ax, (0.4, 5.3), (1.6, 0.7), "ReLU", "", ["CRP"], highlight)
    sum_x = 3.2  # the column of sums: the ReLU's output plus each block's
    ax.plot([2.0, sum_x], [5.65, 5.65], color=EDGE, lw=1.0)
    chain, total = 5.3, 5.65  # where the chain and the running sum leave the row above
    for y in [3.95, 1.75]:
        _arrow(ax, (1.2, chain), (1.2, y + 1.0))
        _box(ax, (0.4, y + 0.45), (1.6, 0.55), "5x5 max pool", "", ["CRP"], highlight)
        _arrow(ax, (1.2, y + 0.45), (1.2, y + 0.25))
        _box(ax, (0.4, y - 0.3), (1.6, 0.55), "3x3 conv", "", ["CRP"], highlight)
        _sum(ax, (sum_x, y))
        _arrow(ax, (2.0, y), (sum_x - 0.16, y))
        _arrow(ax, (sum_x, total), (sum_x, y + 0.16))
        chain, total = y - 0.3, y - 0.16
    ax.text(0.1, 0.55, "the chain feeds each block's\noutput to the next (x4 in rnlib)",
            fontsize=6.5, va="top")
    _arrow(ax, (sum_x, 1.59), (sum_x, 0.1))


def figure3(highlight: str | None = None) -> plt.Figure:
    """A RefineNet block (§3.2, Fig. 3): (a) the block, (b) the RCU, (c) the fusion and (d)
    the chained residual pooling. ``highlight``: one of :data:`FIGURE3_PARTS`."""
    _check(highlight, FIGURE3_PARTS)
    fig = plt.figure(figsize=(10, 8.4))
    grid = fig.add_gridspec(2, 3, height_ratios=[4.0, 6.8])
    _block_overview(fig.add_subplot(grid[0, :]), highlight)
    for column, draw in enumerate([_rcu_closeup, _fusion_closeup, _crp_closeup]):
        draw(fig.add_subplot(grid[1, column]), highlight)  # a close-up lights with its part
    fig.tight_layout()
    return fig


# name, the module that computes it (or "not in rnlib"), what the coarsest level does, how a
# finer level merges with it, the stages it reads (0 = layer1 at 1/4), where it predicts
DECODERS = [
    ("FCN-8s", "rnlib.models.fcn.FCNDecoder", "1x1 conv: scores",
     "scores + the upsampled\ncoarser scores", (1, 2, 3), "1/8, then x8"),
    ("U-Net", "(not in rnlib)", "2 convs", "upsample, concat,\n2 convs", (0, 1, 2, 3),
     "full size"),
    ("FPN", "(not in rnlib)", "1x1 conv", "1x1 conv + the\nupsampled coarser", (0, 1, 2, 3),
     "every level"),
    ("RefineNet", "rnlib.blocks.RefineNetBlock", "RCUs, CRP, RCUs",
     "RCUs, fusion (sum),\nCRP, RCUs", (0, 1, 2, 3), "1/4, then resize"),
]


def figure_decoders() -> plt.Figure:
    """How FCN's skips (Long et al.), U-Net (Ronneberger et al.), FPN (Lin et al., 2017) and
    RefineNet each combine a ResNet's four stages (§1): the stages each reads, how one
    level merges with the coarser one, where it predicts."""
    fig, axes = plt.subplots(1, len(DECODERS), figsize=(12, 4.2))
    for ax, (name, where, start, merge, used, output) in zip(axes, DECODERS):
        _canvas(ax, 5.0, 5.6, name)
        ax.text(0.1, 5.25, where, fontsize=6.5, family="monospace", color="#1f3a5f")
        for i in range(4):
            y = 4.0 - i * 1.15
            _box(ax, (0.1, y), (1.3, 0.7), f"1/{4 * 2 ** i}", "", ["stage"])
            if i:
                _arrow(ax, (0.75, y + 1.15), (0.75, y + 0.7))
            if i in used:
                _box(ax, (2.3, y - 0.05), (2.6, 0.8), merge if i < 3 else start, "", ["merge"])
                _arrow(ax, (1.4, y + 0.35), (2.3, y + 0.35))
                if i < 3 and i + 1 in used:
                    _arrow(ax, (3.6, y - 0.4), (3.6, y - 0.05))
        ax.text(2.3, 0.05, f"predicts: {output}", fontsize=7)
    fig.tight_layout()
    return fig
