"""Exercise 1.2: mean_iou(pred, target, num_classes, ignore_index=255) -> float."""

import torch

from corpus import expect
from rnlib.metrics import ConfusionMatrix

EXERCISE = "1.2"


def correct_loop_over_classes(pred, target, num_classes, ignore_index=255):
    keep = target != ignore_index
    pred, target = pred[keep], target[keep]
    ious = []
    for c in range(num_classes):
        tp = ((pred == c) & (target == c)).sum().item()
        union = ((pred == c) | (target == c)).sum().item()
        if union > 0:
            ious.append(tp / union)
    return sum(ious) / len(ious)


def correct_confusion_matrix_by_bincount(pred, target, num_classes, ignore_index=255):
    keep = target != ignore_index
    m = torch.bincount(target[keep] * num_classes + pred[keep],
                       minlength=num_classes ** 2).reshape(num_classes, num_classes).double()
    tp = m.diag()
    union = m.sum(0) + m.sum(1) - tp
    return (tp[union > 0] / union[union > 0]).mean().item()


def correct_in_float32_with_a_tensor_result(pred, target, num_classes, ignore_index=255):
    keep = target != ignore_index
    p, t = pred[keep], target[keep]
    classes = torch.arange(num_classes)[:, None]
    inter = ((p == classes) & (t == classes)).sum(1).float()
    union = ((p == classes) | (t == classes)).sum(1).float()
    return (inter[union > 0] / union[union > 0]).mean()


def library_confusion_matrix(pred, target, num_classes, ignore_index=255):
    cm = ConfusionMatrix(num_classes, ignore_index)
    cm.update(pred, target)
    return cm.miou()


def _ious(pred, target, num_classes, ignore_index):
    keep = target != ignore_index
    pred, target = pred[keep], target[keep]
    tp = torch.stack([((pred == c) & (target == c)).sum() for c in range(num_classes)]).double()
    fp = torch.stack([((pred == c) & (target != c)).sum() for c in range(num_classes)]).double()
    fn = torch.stack([((pred != c) & (target == c)).sum() for c in range(num_classes)]).double()
    return tp, fp, fn


@expect(r"a class absent from both prediction and target counts as IoU 0")
def wrong_absent_classes_count_as_zero(pred, target, num_classes, ignore_index=255):
    tp, fp, fn = _ious(pred, target, num_classes, ignore_index)
    return (tp / (tp + fp + fn).clamp(min=1)).mean().item()


@expect(r"pixels under the ignore index are counted")
def wrong_counts_ignored_pixels(pred, target, num_classes, ignore_index=255):
    ious = []
    for c in range(num_classes):
        union = ((pred == c) | (target == c)).sum().item()
        if union:
            ious.append(((pred == c) & (target == c)).sum().item() / union)
    return sum(ious) / len(ious)


@expect(r"averages over the classes of the target only")
def wrong_target_classes_only(pred, target, num_classes, ignore_index=255):
    tp, fp, fn = _ious(pred, target, num_classes, ignore_index)
    present = (tp + fn) > 0
    return (tp[present] / (tp + fp + fn)[present]).mean().item()


@expect(r"computes precision")
def wrong_precision(pred, target, num_classes, ignore_index=255):
    tp, fp, fn = _ious(pred, target, num_classes, ignore_index)
    seen = (tp + fp) > 0
    return (tp[seen] / (tp + fp)[seen]).mean().item()


@expect(r"Dice coefficient")
def wrong_dice(pred, target, num_classes, ignore_index=255):
    tp, fp, fn = _ious(pred, target, num_classes, ignore_index)
    seen = (tp + fp + fn) > 0
    return (2 * tp[seen] / (2 * tp + fp + fn)[seen]).mean().item()


@expect(r"ignores its ignore_index argument")
def wrong_hard_coded_255(pred, target, num_classes, ignore_index=255):
    tp, fp, fn = _ious(pred, target, num_classes, 255)
    seen = (tp + fp + fn) > 0
    return (tp[seen] / (tp + fp + fn)[seen]).mean().item()


@expect(r"leaves out the last class")
def wrong_skips_the_last_class(pred, target, num_classes, ignore_index=255):
    tp, fp, fn = _ious(pred, target, num_classes - 1, ignore_index)
    union = tp + fp + fn
    return (tp[union > 0] / union[union > 0]).mean().item()


@expect(r"averages over the predicted classes only")
def wrong_predicted_classes_only(pred, target, num_classes, ignore_index=255):
    keep = target != ignore_index
    pred, target = pred[keep], target[keep]
    ious = [((pred == c) & (target == c)).sum().item() / ((pred == c) | (target == c)).sum().item()
            for c in pred.unique().tolist()]
    return sum(ious) / len(ious)


@expect(r"called without ignore_index it gives \S+, expected \S+: its default ignore_index is not 255")
def wrong_default_ignore_index(pred, target, num_classes, ignore_index=-1):
    return correct_loop_over_classes(pred, target, num_classes, ignore_index)
