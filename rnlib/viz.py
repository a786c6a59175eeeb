"""Pictures: masks in colour, overlays, predictions side by side, training curves and the
comparison as a plot. Every function returns its matplotlib Figure."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

from .data.synthetic import PALETTE
from .data.transforms import IGNORE_INDEX, denormalize

__all__ = ["colorize", "overlay", "show_predictions", "plot_history", "plot_comparison"]


def colorize(mask: torch.Tensor | np.ndarray, palette: Sequence[tuple[int, int, int]] = PALETTE
             ) -> np.ndarray:
    """(H, W) labels -> (H, W, 3) uint8 colours; the ignore index is white."""
    mask = np.asarray(mask.cpu() if isinstance(mask, torch.Tensor) else mask)
    colours = np.zeros((256, 3), np.uint8)
    colours[: len(palette)] = palette
    colours[IGNORE_INDEX] = 255
    return colours[mask.astype(np.int64) % 256]


def _image(image: torch.Tensor) -> np.ndarray:
    """A normalised (3, H, W) tensor -> (H, W, 3) floats in [0, 1]."""
    return denormalize(image.unsqueeze(0).float().cpu())[0].permute(1, 2, 0).numpy()


def overlay(image: torch.Tensor, mask: torch.Tensor, alpha: float = 0.5,
            palette: Sequence[tuple[int, int, int]] = PALETTE) -> np.ndarray:
    """The image with its mask's colours blended over every non-background pixel."""
    img = _image(image)
    colours = colorize(mask, palette) / 255.0
    m = (np.asarray(mask.cpu()) != 0)[..., None]
    return np.where(m, (1 - alpha) * img + alpha * colours, img)


def show_predictions(images: torch.Tensor, masks: torch.Tensor,
                     predictions: dict[str, torch.Tensor], max_images: int = 4,
                     palette: Sequence[tuple[int, int, int]] = PALETTE) -> plt.Figure:
    """Rows of image | truth | each model's prediction."""
    n = min(max_images, len(images))
    cols = 2 + len(predictions)
    fig, axes = plt.subplots(n, cols, figsize=(2.2 * cols, 2.2 * n), squeeze=False)
    for i in range(n):
        panels = [("image", _image(images[i])), ("truth", colorize(masks[i], palette))]
        panels += [(name, colorize(p[i], palette)) for name, p in predictions.items()]
        for ax, (title, picture) in zip(axes[i], panels):
            ax.imshow(picture, interpolation="nearest")
            ax.set_axis_off()
            if i == 0:
                ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def plot_history(histories: dict[str, dict[str, list[float]]]) -> plt.Figure:
    """Training loss and validation mIoU against steps, one line per run."""
    fig, (loss_ax, miou_ax) = plt.subplots(1, 2, figsize=(9, 3.2))
    for name, h in histories.items():
        if "step_loss" in h:  # every step, smoothed over 10
            loss = torch.tensor(h["step_loss"])
            smooth = loss.unfold(0, 10, 1).mean(1) if len(loss) >= 10 else loss
            loss_ax.plot(range(len(loss) - len(smooth) + 1, len(loss) + 1), smooth, label=name)
        else:
            loss_ax.plot(h["step"], h["train_loss"], marker="o", label=name)
        if "val_miou" in h:
            steps = h["step"][-len(h["val_miou"]):]
            miou_ax.plot(steps, [100 * v for v in h["val_miou"]], marker="o", label=name)
    loss_ax.set(xlabel="step", ylabel="training loss")
    miou_ax.set(xlabel="step", ylabel="validation mIoU (%)")
    loss_ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_comparison(rows: Sequence, title: str = "") -> plt.Figure:
    """Bars of mIoU, boundary F, latency and training memory for compare() rows."""
    metrics = [("mIoU (%)", lambda r: 100 * r.miou),
               ("boundary F (%)", lambda r: 100 * r.boundary_f),
               ("latency (ms)", lambda r: r.latency_ms),
               ("train peak memory (MiB)", lambda r: r.train_peak_mib)]
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.2 * len(metrics), 3.2))
    names = [r.name for r in rows]
    for ax, (label, value) in zip(axes, metrics):
        ax.barh(names, [value(r) for r in rows], color="tab:blue")
        ax.set_title(label, fontsize=10)
        ax.invert_yaxis()
        ax.tick_params(labelsize=8)
    for ax in axes[1:]:
        ax.set_yticklabels([])
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
