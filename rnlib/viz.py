"""Pictures: masks in colour, overlays, predictions side by side, training curves and the
comparison as a plot. Every function returns its matplotlib Figure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

from .constants import IGNORE_INDEX
from .data.synthetic import PALETTE
from .data.transforms import denormalize
from .history import History

__all__ = ["colorize", "overlay", "show_predictions", "plot_history", "plot_comparison",
           "plot_curves"]


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


def plot_history(histories: Mapping[str, History | Mapping[str, list]]) -> plt.Figure:
    """Training loss and validation mIoU against steps, one line per run (a Trainer's
    ``history``, or the plain data of a history.json)."""
    fig, (loss_ax, miou_ax) = plt.subplots(1, 2, figsize=(9, 3.2))
    for name, h in histories.items():
        h = h if isinstance(h, History) else History.from_dict(h)
        if h.step_loss:  # every step, smoothed over 10
            loss = torch.tensor(h.step_loss)
            smooth = loss.unfold(0, 10, 1).mean(1) if len(loss) >= 10 else loss
            loss_ax.plot(range(len(loss) - len(smooth) + 1, len(loss) + 1), smooth, label=name)
        else:
            loss_ax.plot(h.step, h.train_loss, marker="o", label=name)
        if h.val_miou:
            miou_ax.plot(h.eval_step, [100 * v for v in h.val_miou], marker="o", label=name)
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


def plot_curves(rows: Sequence, title: str = "") -> plt.Figure:
    """Validation mIoU of compare() rows against training steps and against training seconds:
    the mean over seeds, with the range of the seeds shaded."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
    for i, r in enumerate(rows):
        curves = [c for c in r.curves if c["step"]]
        if not curves:
            continue
        n = min(len(c["step"]) for c in curves)
        miou = 100 * np.array([c["miou"][:n] for c in curves])  # (seeds, evaluations)
        colour = plt.cm.tab10(i % 10)
        for ax, x in zip(axes, (np.array(curves[0]["step"][:n]),
                                np.mean([c["seconds"][:n] for c in curves], axis=0))):
            ax.plot(x, miou.mean(0), color=colour, label=r.name)
            ax.fill_between(x, miou.min(0), miou.max(0), color=colour, alpha=0.2, linewidth=0)
    axes[0].set(xlabel="training step", ylabel="validation mIoU (%)")
    axes[1].set(xlabel="training seconds (this machine)")
    axes[0].legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
