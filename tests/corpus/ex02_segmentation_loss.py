"""Exercise 2.2: segmentation_loss(logits (N, K, h, w), target (N, H, W)) -> scalar."""

import torch.nn.functional as F
from torch import nn

from corpus import expect
from rnlib import blocks

EXERCISE = "2.2"


def correct_interpolate_then_cross_entropy(logits, target):
    logits = F.interpolate(logits, size=target.shape[-2:], mode="bilinear", align_corners=False)
    return F.cross_entropy(logits, target, ignore_index=255)


def correct_align_corners_and_a_loss_module(logits, target):
    up = nn.Upsample(size=tuple(target.shape[-2:]), mode="bilinear", align_corners=True)
    return nn.CrossEntropyLoss(ignore_index=255)(up(logits), target)


def correct_log_softmax_and_nll(logits, target):
    up = blocks.resize(logits, target.shape[-2:])
    return F.nll_loss(F.log_softmax(up, dim=1), target, ignore_index=255)


@expect(r"softmax before upsampling")
def wrong_softmax_first(logits, target):
    probs = F.interpolate(logits.softmax(1), size=target.shape[-2:], mode="bilinear")
    return F.nll_loss(probs.log(), target, ignore_index=255)


@expect(r"the target holds 255 .*\n.*\nHint: pass ignore_index=255")
def wrong_without_ignore_index(logits, target):
    return F.cross_entropy(blocks.resize(logits, target.shape[-2:]), target)


@expect(r"shrinks the target to the logits' size")
def wrong_shrinks_the_target(logits, target):
    small = F.interpolate(target[:, None].float(), size=logits.shape[-2:], mode="nearest")
    return F.cross_entropy(logits, small[:, 0].long(), ignore_index=255)


@expect(r"mode='nearest'")
def wrong_nearest(logits, target):
    return F.cross_entropy(F.interpolate(logits, size=target.shape[-2:]), target,
                           ignore_index=255)


@expect(r"sums the loss over pixels")
def wrong_sum(logits, target):
    return F.cross_entropy(blocks.resize(logits, target.shape[-2:]), target, ignore_index=255,
                           reduction="sum")


@expect(r"returns a tensor of shape \(2, 20, 28\), not a scalar tensor")
def wrong_per_pixel(logits, target):
    return F.cross_entropy(blocks.resize(logits, target.shape[-2:]), target, ignore_index=255,
                           reduction="none")
