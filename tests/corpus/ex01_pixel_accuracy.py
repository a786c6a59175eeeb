"""Exercise 1.1: pixel_accuracy(pred, target, ignore_index=255) -> float."""

import numpy as np
import torch

from corpus import expect
from rnlib.metrics import ConfusionMatrix

EXERCISE = "1.1"


def correct_with_a_mask(pred, target, ignore_index=255):
    keep = target != ignore_index
    return (pred[keep] == target[keep]).float().mean().item()


def correct_in_numpy(pred, target, ignore_index=255):
    p, t = pred.numpy(), target.numpy()
    valid = t != ignore_index
    return float(np.sum((p == t) & valid) / np.sum(valid))


def correct_returns_a_tensor(pred, target, ignore_index=255):
    valid = target.ne(ignore_index)
    return torch.logical_and(pred.eq(target), valid).sum() / valid.sum()


@expect(r"pixels under the ignore index are counted")
def wrong_counts_ignored_pixels(pred, target, ignore_index=255):
    return (pred == target).float().mean().item()


@expect(r"it gives a percentage")
def wrong_percentage(pred, target, ignore_index=255):
    keep = target != ignore_index
    return 100 * (pred[keep] == target[keep]).float().mean().item()


@expect(r"returns the number of correct pixels")
def wrong_count(pred, target, ignore_index=255):
    keep = target != ignore_index
    return (pred[keep] == target[keep]).sum().item()


@expect(r"ignores its ignore_index argument")
def wrong_hard_coded_255(pred, target, ignore_index=255):
    keep = target != 255
    return (pred[keep] == target[keep]).float().mean().item()


@expect(r"returns NoneType, not a number")
def wrong_forgets_to_return(pred, target, ignore_index=255):
    keep = target != ignore_index
    (pred[keep] == target[keep]).float().mean().item()


@expect(r"called without ignore_index it gives \S+, expected \S+: its default ignore_index is not 255")
def wrong_default_ignore_index(pred, target, ignore_index=0):
    keep = target != ignore_index
    return (pred[keep] == target[keep]).float().mean().item()


def library_confusion_matrix(pred, target, ignore_index=255):
    cm = ConfusionMatrix(int(max(pred.max(), target[target != ignore_index].max())) + 1,
                         ignore_index)
    cm.update(pred, target)
    return cm.pixel_accuracy()
