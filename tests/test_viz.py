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
    history = {"step": [5, 10], "train_loss": [1.0, 0.5], "val_miou": [0.3],
               "step_loss": [1.0] * 12}
    assert len(viz.plot_history({"run": history}).axes) == 2
    row = Row("m", "fcn8s", 0.5, 0.4, [0.5], 1.0, 2.0, 3.0, 4.0, 5.0, 7.0, False, 6, "x/last.pt")
    assert len(viz.plot_comparison([row, row]).axes) == 4
