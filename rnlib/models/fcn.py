"""Fully convolutional networks (Long, Shelhamer and Darrell, CVPR 2015) on a ResNet.

The baseline RefineNet argues against (Lin et al., §1-2): class scores from the coarsest stage
(FCN-32s), optionally corrected by scores from the 1/16 stage (FCN-16s) and the 1/8 stage
(FCN-8s), each a 1x1 "score" convolution, summed after resizing to the finer map.

FCN-4s, one more skip from the 1/4 stage (layer1), is not in Long et al. (their finest is 8s).
rnlib adds it as a control: it predicts at RefineNet's output stride (1/4) without RefineNet's
blocks, so that a finer output alone and multi-path refinement (Lin et al., §3.1) can be told
apart.
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
        if not 0 <= num_skips <= 3:
            raise ValueError(f"num_skips must be 0..3 (FCN-32s, 16s, 8s, 4s), got {num_skips}")
        self.stages = list(range(3, 2 - num_skips, -1))  # [3], [3, 2], [3, 2, 1], [3, 2, 1, 0]
        self.scores = nn.ModuleList(nn.Conv2d(channels[i], num_classes, 1) for i in self.stages)

    def forward(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        out = None
        for score, i in zip(self.scores, self.stages):
            s = score(features[i])  # (N, K, H/r_i, W/r_i)
            out = s if out is None else resize(out, s.shape[-2:]) + s
        return out


def fcn(*, num_classes: int, backbone: str = "resnet50", pretrained_backbone: bool = False,
        in_channels: int = 3, num_skips: int = 2) -> SegmentationModel:
    """FCN-32s (``num_skips=0``), FCN-16s (1), FCN-8s (2) or FCN-4s (3, rnlib's control at
    RefineNet's output stride)."""
    encoder = ResNetBackbone(backbone, pretrained=pretrained_backbone, in_channels=in_channels)
    decoder = FCNDecoder(encoder.channels, num_classes, num_skips)
    return SegmentationModel(encoder, decoder, num_classes=num_classes, in_channels=in_channels)


for _name, _skips in [("fcn32s", 0), ("fcn16s", 1), ("fcn8s", 2), ("fcn4s", 3)]:
    register(_name, doc=f"FCN-{_name[3:]} on a ResNet")(partial(fcn, num_skips=_skips))
