"""Notebook 01: 1.1 pixel accuracy and 1.2 mean IoU, on label maps with pixels to ignore."""

from __future__ import annotations

import random
from collections.abc import Callable

import torch

from .. import metrics
from ..metrics import ConfusionMatrix
from .report import Explanation, passed
from .scalar import Mistake, diagnose, number
from .state import checker, randomness
from .student import Watch, call
from .tolerance import show


def _counted(ignore: int) -> Explanation:
    """The message for a result that counts the pixels under ``ignore``: with another ignore
    index than 255 (checked after 255), a function that always drops 255 does that."""
    if ignore == 255:
        return ("pixels under the ignore index are counted",
                "keep only target != ignore_index before comparing")
    return ("it ignores its ignore_index argument (it always drops 255)",
            "compare with the ignore_index parameter, not 255")


def _labels(gen: torch.Generator, shape: tuple[int, ...], target_classes: list[int],
            pred_classes: list[int], ignore: int) -> tuple[torch.Tensor, torch.Tensor]:
    def draw(classes: list[int]) -> torch.Tensor:
        return torch.tensor(classes)[torch.randint(0, len(classes), shape, generator=gen)]

    target, pred = draw(target_classes), draw(pred_classes)
    target[torch.rand(shape, generator=gen) < 0.15] = ignore
    return pred, target


def _confusion(pred: torch.Tensor, target: torch.Tensor, k: int, ignore: int) -> ConfusionMatrix:
    cm = ConfusionMatrix(k, ignore_index=ignore)
    cm.update(pred, target)
    return cm


def _default_ignore(watch: Watch, fn: Callable, args: tuple, expected: float,
                    context: str) -> None:
    """Called without ``ignore_index``, ``fn(*args)`` must ignore 255, its default."""
    got = number(watch.component, call(watch, fn, *args, context=context,
                                       hint="give ignore_index the default 255"))
    mine, theirs = show(got, expected)
    diagnose(watch.component, got, expected, "give ignore_index the default 255 in the "
             "function's signature", context=context, otherwise=f"called without ignore_index "
             f"it gives {mine}, expected {theirs}: its default ignore_index is not 255")


@checker
def check_pixel_accuracy(fn: Callable, *, seed: int | None = None,
                         allow_library: bool = False) -> None:
    """Exercise 1.1: ``fn(pred, target, ignore_index=255) -> float``."""
    name = "pixel_accuracy"
    rng, gen, _ = randomness(seed)
    watch = Watch(name, (metrics,), allow_library)
    for ignore in (255, rng.choice([4, 9])):
        shape = (2, rng.randint(9, 14), rng.randint(7, 12))
        pred, target = _labels(gen, shape, list(range(4)), list(range(4)), ignore)
        context = f"{shape[0]} label maps of {shape[1]}x{shape[2]}, ignore_index={ignore}"
        got = number(name, call(watch, fn, pred, target, ignore, context=context,
                                hint="index with a mask: keep = target != ignore_index"))
        valid = target != ignore
        correct = int((pred[valid] == target[valid]).sum())
        expected = correct / int(valid.sum())
        diagnose(name, got, expected, "correct pixels / valid pixels", context=context, mistakes=[
            Mistake((pred == target).float().mean().item(), *_counted(ignore)),
            Mistake(100 * expected, "it gives a percentage", "return a fraction between 0 and 1"),
            Mistake(float(correct), "it returns the number of correct pixels",
                    "divide it by the number of valid pixels")])
        if ignore == 255:
            _default_ignore(watch, fn, (pred, target), expected, context)
    passed(name)


def _iou_labels(rng: random.Random, gen: torch.Generator, shape: tuple[int, ...], k: int,
                ignore: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Labels that reach every case of the mean: a class absent from both maps, two only in
    the target, one only in the prediction, and the last class in both."""
    classes = [c for c in range(k) if c != ignore]
    absent, *target_only, pred_only = rng.sample(classes[:-1], 4)
    both = [c for c in classes if c not in (absent, *target_only, pred_only)]
    return _labels(gen, shape, both + target_only, both + [pred_only], ignore)


def _iou_mistakes(pred: torch.Tensor, target: torch.Tensor, k: int,
                  ignore: int) -> list[Mistake]:
    cm = _confusion(pred, target, k, ignore)
    m = cm.matrix.double()  # rows: target, columns: prediction
    tp, in_target, in_pred = m.diag(), m.sum(1), m.sum(0)
    return [
        Mistake(lambda: torch.nan_to_num(cm.iou()).mean(), "a class absent from both "
                "prediction and target counts as IoU 0", "average only over classes whose "
                                                         "union is not empty"),
        Mistake(lambda: _confusion(pred, target, 256, -1).iou()[:k].nanmean(), *_counted(ignore)),
        Mistake(lambda: cm.iou()[in_target > 0].mean(), "it averages over the classes of the "
                "target only", "a class that only the prediction contains counts too (its IoU "
                               "is 0)"),
        Mistake(lambda: cm.iou()[in_pred > 0].mean(), "it averages over the predicted classes "
                "only", "a class that only the target contains counts too (its IoU is 0)"),
        Mistake(lambda: cm.iou()[:k - 1].nanmean(), "it leaves out the last class",
                "loop over range(num_classes): classes 0 to num_classes - 1"),
        Mistake(lambda: (tp / in_pred)[in_pred > 0].mean(), "it computes precision, "
                "TP / (TP + FP)", "IoU's denominator is the union: TP + FP + FN"),
        Mistake(lambda: (2 * tp / (in_pred + in_target))[(in_pred + in_target) > 0].mean(),
                "it computes the Dice coefficient, 2 TP / (2 TP + FP + FN)",
                "IoU = TP / (TP + FP + FN)"),
    ]


@checker
def check_mean_iou(fn: Callable, *, seed: int | None = None,
                   allow_library: bool = False) -> None:
    """Exercise 1.2: ``fn(pred, target, num_classes, ignore_index=255) -> float``."""
    name = "mean_iou"
    rng, gen, _ = randomness(seed)
    watch = Watch(name, (metrics,), allow_library)
    for k, ignore in [(6, 255), (rng.randint(7, 9), rng.choice([0, 200]))]:
        shape = (2, rng.randint(9, 14), rng.randint(7, 12))
        pred, target = _iou_labels(rng, gen, shape, k, ignore)
        context = f"{k} classes, ignore_index={ignore}"
        got = number(name, call(watch, fn, pred, target, k, ignore, context=context,
                                hint="per class: TP / (TP + FP + FN) over the pixels not "
                                     "ignored"))
        expected = _confusion(pred, target, k, ignore).miou()
        diagnose(name, got, expected, "IoU_c = TP / (TP + FP + FN); mIoU is their mean over the "
                 "classes present", mistakes=_iou_mistakes(pred, target, k, ignore),
                 context=context)
        if ignore == 255:
            _default_ignore(watch, fn, (pred, target, k), expected, context)
    passed(name)
