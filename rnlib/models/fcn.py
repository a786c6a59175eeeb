"""Fully convolutional networks (Long, Shelhamer and Darrell, CVPR 2015) on a ResNet.

The baseline RefineNet argues against (Lin et al., §1-2): class scores from the coarsest stage
(FCN-32s), optionally corrected by scores from the 1/16 stage (FCN-16s) and the 1/8 stage
(FCN-8s), each a 1x1 "score" convolution, summed after resizing to the finer map.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import torch
from torch import nn

from ..backbones import ResNetBackbone
from ..blocks import resize
from .base import SegmentationModel
from .registry import register

__all__ = ["FCNDecoder", "fcn"]


class FCNDecoder(nn.Module):
    """Score layers on the last ``num_skips + 1`` stages, summed coarse to fine."""

    def __init__(self, channels: Sequence[int], num_classes: int, num_skips: int) -> None:
        super().__init__()
        if not 0 <= num_skips <= 2:
            raise ValueError(f"FCN uses 0, 1 or 2 skips (32s, 16s, 8s), got {num_skips}")
        self.stages = list(range(3, 2 - num_skips, -1))  # [3], [3, 2] or [3, 2, 1]
        self.scores = nn.ModuleList(nn.Conv2d(channels[i], num_classes, 1) for i in self.stages)

    def forward(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        out = None
        for score, i in zip(self.scores, self.stages):
            s = score(features[i])  # (N, K, H/r_i, W/r_i)
            out = s if out is None else resize(out, s.shape[-2:]) + s
        return out


def fcn(*, num_classes: int, backbone: str = "resnet50", pretrained_backbone: bool = False,
        in_channels: int = 3, num_skips: int = 2) -> SegmentationModel:
    """FCN-32s (``num_skips=0``), FCN-16s (1) or FCN-8s (2)."""
    encoder = ResNetBackbone(backbone, pretrained=pretrained_backbone, in_channels=in_channels)
    decoder = FCNDecoder(encoder.channels, num_classes, num_skips)
    return SegmentationModel(encoder, decoder, num_classes=num_classes, in_channels=in_channels)


for _name, _skips in [("fcn32s", 0), ("fcn16s", 1), ("fcn8s", 2)]:
    register(_name, doc=f"FCN-{_name[3:]} on a ResNet")(partial(fcn, num_skips=_skips))
