"""The plotting helpers return figures and arrays of the right shape (headless: the root
conftest selects matplotlib's Agg backend)."""

import numpy as np
import torch

from rnlib import viz
from rnlib.compare import Row
from rnlib.data.synthetic import PALETTE


def test_colorize_and_overlay():
    mask = torch.tensor([[0, 1], [4, 255]])
    colours = viz.colorize(mask)
    assert colours.shape == (2, 2, 3) and tuple(colours[0, 1]) == PALETTE[1]
    assert tuple(colours[1, 1]) == (255, 255, 255)  # ignore is white
    image = torch.zeros(3, 2, 2)
    blended = viz.overlay(image, mask)
    assert blended.shape == (2, 2, 3) and np.allclose(blended[0, 0], viz.overlay(image, mask * 0)[0, 0])


def test_figures():
    images, masks = torch.zeros(2, 3, 8, 8), torch.zeros(2, 8, 8, dtype=torch.long)
    fig = viz.show_predictions(images, masks, {"a": masks, "b": masks})
    assert len(fig.axes) == 2 * 4
    history = {"step": [5, 10], "train_loss": [1.0, 0.5], "eval_step": [10], "val_miou": [0.3],
               "step_loss": [1.0] * 12}
    assert len(viz.plot_history({"run": history}).axes) == 2
    curves = [{"seed": s, "step": [5, 10], "seconds": [1.0, 2.0], "miou": [0.2, 0.3 + s / 10]}
              for s in (0, 1)]
    row = Row(name="m", model="fcn8s", lr=1e-3, split="test", seeds=[0, 1], miou=0.5,
              miou_std=0.1, boundary_f=0.4, boundary_f_std=0.0, iou=[0.5], iou_std=[0.0],
              miou_per_seed=[0.4, 0.6], plateau=0.01, params_m=1.0, gflops=2.0, latency_ms=3.0,
              train_peak_mib=4.0, train_s=5.0, total_s=7.0, reused=False, steps=10,
              checkpoints=["x/last.pt"], classes=["a"], curves=curves)
    assert len(viz.plot_comparison([row, row]).axes) == 4
    fig = viz.plot_curves([row])
    assert len(fig.axes) == 2 and len(fig.axes[0].lines) == 1
