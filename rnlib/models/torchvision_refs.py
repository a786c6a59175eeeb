"""torchvision's own ``fcn_resnet50`` and ``deeplabv3_resnet50``, wrapped to rnlib's interface
(a tensor of logits, not an OrderedDict) as external yardsticks for the comparison."""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models import get_model_weights
from torchvision.models.segmentation import (
    deeplabv3_resnet50,
    deeplabv3_resnet101,
    fcn_resnet50,
    fcn_resnet101,
)

from .base import check_images
from .registry import register

__all__ = ["TorchvisionSegmentation"]

_BUILDERS = {
    ("fcn", "resnet50"): fcn_resnet50, ("fcn", "resnet101"): fcn_resnet101,
    ("deeplabv3", "resnet50"): deeplabv3_resnet50, ("deeplabv3", "resnet101"): deeplabv3_resnet101,
}


class TorchvisionSegmentation(nn.Module):
    """A torchvision segmentation model returning ``model(x)["out"]``."""

    def __init__(self, kind: str, *, num_classes: int, backbone: str = "resnet50",
                 pretrained_backbone: bool = False, in_channels: int = 3) -> None:
        super().__init__()
        if (kind, backbone) not in _BUILDERS:
            raise ValueError(f"torchvision's {kind} exists for resnet50 and resnet101 only, "
                             f"got backbone={backbone!r}")
        if in_channels != 3:
            raise ValueError("torchvision's segmentation models take 3-channel images only; "
                             "use rnlib's fcn8s or deeplab-os8 for in_channels != 3")
        weights = get_model_weights(backbone).DEFAULT if pretrained_backbone else None
        self.model = _BUILDERS[kind, backbone](weights=None, weights_backbone=weights,
                                               num_classes=num_classes, aux_loss=False)
        self.num_classes = num_classes
        self.in_channels = 3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_images(x, self.in_channels)
        return self.model(x)["out"]  # (N, K, H, W)

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """``backbone`` (torchvision's ResNet) and ``head`` (its classifier)."""
        return {"backbone": list(self.model.backbone.parameters()),
                "head": list(self.model.classifier.parameters())}


@register("tv-fcn", doc="torchvision fcn_resnet50 (reference)")
def tv_fcn(**kw) -> nn.Module:
    return TorchvisionSegmentation("fcn", **kw)


@register("tv-deeplabv3", doc="torchvision deeplabv3_resnet50 (reference)")
def tv_deeplabv3(**kw) -> nn.Module:
    return TorchvisionSegmentation("deeplabv3", **kw)
