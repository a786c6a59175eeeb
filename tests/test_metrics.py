"""Metrics against independent computations (plain Python loops and hand-worked examples)."""

import numpy as np
import pytest
import torch

from rnlib.metrics import BoundaryFScore, ConfusionMatrix, boundaries


def test_confusion_matrix_matches_a_python_loop():
    rng = np.random.default_rng(0)
    target = rng.integers(0, 4, (2, 9, 7))
    target[rng.random(target.shape) < 0.2] = 255
    pred = rng.integers(0, 4, (2, 9, 7))
    cm = ConfusionMatrix(4)
    cm.update(torch.from_numpy(pred), torch.from_numpy(target))
    expected = np.zeros((4, 4), int)
    for t, p in zip(target.ravel(), pred.ravel()):
        if t != 255:
            expected[t, p] += 1
    assert np.array_equal(cm.matrix.numpy(), expected)
    ious = [expected[c, c] / (expected[c].sum() + expected[:, c].sum() - expected[c, c])
            for c in range(4)]
    assert cm.iou().numpy() == pytest.approx(ious)
    assert cm.miou() == pytest.approx(np.mean(ious))
    assert cm.pixel_accuracy() == pytest.approx(np.trace(expected) / expected.sum())


def test_miou_by_hand():
    target = torch.tensor([[0, 0, 1, 1]])
    pred = torch.tensor([[0, 1, 1, 1]])
    cm = ConfusionMatrix(3)
    cm.update(pred, target)
    # class 0: TP 1, union 2 -> 0.5; class 1: TP 2, union 3 -> 2/3; class 2 absent -> ignored
    assert cm.miou() == pytest.approx((0.5 + 2 / 3) / 2)
    assert torch.isnan(cm.iou()[2])


def test_logits_are_accepted_and_shapes_checked():
    cm = ConfusionMatrix(2)
    logits = torch.tensor([[[[5.0, -5.0]], [[-5.0, 5.0]]]])  # (1, 2, 1, 2) -> labels [0, 1]
    cm.update(logits, torch.tensor([[[0, 1]]]))
    assert cm.miou() == 1.0
    with pytest.raises(ValueError, match="differ in shape; upsample"):
        cm.update(torch.zeros(1, 2, 4, 4), torch.zeros(1, 8, 8, dtype=torch.long))


def test_out_of_range_labels_are_an_error():
    with pytest.raises(ValueError, match="label 7 outside 0..2"):
        ConfusionMatrix(3).update(torch.zeros(1, 2, dtype=torch.long), torch.tensor([[0, 7]]))


def test_boundaries_of_a_square():
    labels = torch.zeros(1, 6, 6, dtype=torch.long)
    labels[0, 1:4, 1:4] = 1
    edge = boundaries(labels)[0]
    inner_ring = torch.zeros(6, 6, dtype=torch.bool)
    inner_ring[1:4, 1:4] = True
    inner_ring[2, 2] = False
    assert torch.equal(edge & (labels[0] == 1), inner_ring)


def _square(shift=0, size=24):
    labels = torch.zeros(1, size, size, dtype=torch.long)
    labels[0, 6 + shift:16 + shift, 6:16] = 1
    return labels


def test_boundary_f_perfect_tolerant_and_poor():
    target = _square()
    perfect = BoundaryFScore(2)
    perfect.update(target, target)
    assert perfect.score() == 1.0
    near = BoundaryFScore(2, tolerance=2)
    near.update(_square(shift=1), target)
    assert near.score() == 1.0  # a one-pixel shift is within the tolerance
    far = BoundaryFScore(2, tolerance=2)
    far.update(_square(shift=5), target)
    assert far.score() < 0.8


def _boundary_f_loops(pred, target, c, tol):
    """Independent: per pixel, search the (2 tol + 1)^2 window by hand."""
    def edge(lab):
        h, w = lab.shape
        out = np.zeros_like(lab, bool)
        for y in range(h):
            for x in range(w):
                if lab[y, x] != c:
                    continue
                for dy, dx in ((0, 1), (0, -1), (1, 0), (-1, 0)):
                    yy, xx = y + dy, x + dx
                    if 0 <= yy < h and 0 <= xx < w and lab[yy, xx] != c:
                        out[y, x] = True
        return out

    def matched(a, b):
        h, w = a.shape
        return sum(1 for y in range(h) for x in range(w) if a[y, x]
                   and b[max(0, y - tol):y + tol + 1, max(0, x - tol):x + tol + 1].any())

    ep, et = edge(pred), edge(target)
    p = matched(ep, et) / max(ep.sum(), 1)
    r = matched(et, ep) / max(et.sum(), 1)
    return 2 * p * r / (p + r) if p + r else 0.0


@pytest.mark.parametrize("classes,tolerance,shape", [(2, 1, (12, 12)), (3, 2, (13, 17))])
def test_boundary_f_matches_loops_on_random_blobs(classes, tolerance, shape):
    rng = np.random.default_rng(1)
    target = rng.integers(0, classes, shape)
    pred = rng.integers(0, classes, shape)
    bf = BoundaryFScore(classes, tolerance=tolerance)
    bf.update(torch.from_numpy(pred)[None], torch.from_numpy(target)[None])
    expected = [_boundary_f_loops(pred, target, c, tolerance) for c in range(classes)]
    assert bf.per_class().numpy() == pytest.approx(expected)


def test_boundary_f_ignores_ignored_pixels():
    target = _square()
    pred = target.clone()
    pred[0, :, 18:] = 1  # a wrong region...
    target_ignored = target.clone()
    target_ignored[0, :, 17:] = 255  # ...entirely under the ignore index
    bf = BoundaryFScore(2)
    bf.update(pred, target_ignored)
    assert bf.score() == pytest.approx(1.0)
