"""Dilated networks (DeepLab; Chen et al., 2016/2017): the other baseline RefineNet argues
against (Lin et al., §1). The ResNet's last strides become dilations, so the features stay at
1/8 or 1/16 of the input, at the price of memory and compute on large maps. The head is
either a simple one (torchvision's FCNHead: 3x3 conv, BN, ReLU, dropout, 1x1) or ASPP
(torchvision's DeepLabHead, rates 12/24/36 at output stride 8 and 6/12/18 at 16), whose
dilated convolutions stay fast in bfloat16 on the CPU (:mod:`rnlib.models.atrous`).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import torch
from torch import nn
from torchvision.models.segmentation.deeplabv3 import DeepLabHead
from torchvision.models.segmentation.fcn import FCNHead

from ..backbones import ResNetBackbone
from .atrous import atrous_convs
from .base import SegmentationModel
from .registry import register

__all__ = ["LastStageHead", "dilated"]


class LastStageHead(nn.Module):
    """Apply a head to the backbone's last feature map only."""

    def __init__(self, head: nn.Module) -> None:
        super().__init__()
        self.head = head

    def forward(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        return self.head(features[-1])


def dilated(*, num_classes: int, backbone: str = "resnet50", pretrained_backbone: bool = False,
            in_channels: int = 3, output_stride: int = 8, aspp: bool = False) -> SegmentationModel:
    """Dilated ResNet at ``output_stride`` 8 or 16 with a simple or an ASPP head."""
    if output_stride not in (8, 16):
        raise ValueError(f"dilated networks use output_stride 8 or 16, got {output_stride}")
    encoder = ResNetBackbone(backbone, pretrained=pretrained_backbone,
                             output_stride=output_stride, in_channels=in_channels)
    width = encoder.channels[-1]
    if aspp:
        rates = (12, 24, 36) if output_stride == 8 else (6, 12, 18)
        head: nn.Module = atrous_convs(DeepLabHead(width, num_classes, atrous_rates=rates))
    else:
        head = FCNHead(width, num_classes)
    return SegmentationModel(encoder, LastStageHead(head), num_classes=num_classes,
                             in_channels=in_channels)


for _os in (8, 16):
    register(f"dilated-os{_os}", doc=f"dilated ResNet, output stride {_os}, simple head")(
        partial(dilated, output_stride=_os))
    register(f"deeplab-os{_os}", doc=f"dilated ResNet, output stride {_os}, ASPP head")(
        partial(dilated, output_stride=_os, aspp=True))
