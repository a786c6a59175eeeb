"""ResNet feature extractor (He et al., 2016) as RefineNet uses it (Lin et al., §3.1).

The backbone is torchvision's ResNet, not a private copy. It returns the outputs of its four
stages (``layer1``..``layer4``) and announces their ``channels`` and ``reductions`` so that
decoders are sized from that declaration, not from constants.

The dilated variants (output stride 16 or 8, Chen et al., DeepLab) replace the stride of the
last stages by dilation. torchvision's ``replace_stride_with_dilation`` works only for the
bottleneck ResNets (-50/101/152): for ResNet-18/34 it raises "Dilation > 1 not supported in
BasicBlock". So :func:`dilate_stage` sets strides, dilations and paddings of the 3x3
convolutions itself, the same way for every depth.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision import models

from .weights import check_pretrained, load_state_dict, resolve

__all__ = ["BACKBONES", "ResNetBackbone", "check_pretrained", "dilate_stage"]

BACKBONES = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")


class ResNetBackbone(nn.Module):
    """ResNet stages 1-4, returning ``[c1, c2, c3, c4]`` at 1/4, 1/8, 1/16, 1/32 (or less
    reduced with ``output_stride`` 16 or 8).

    ``pretrained``: False, ``"imagenet"``/True (torchvision's weights, a download the first
    time), ``"glyphs"`` (shipped, ResNet-18 only) or a state-dict path (:mod:`rnlib.weights`).
    ``in_channels`` other than 3 replaces the first convolution (with pretrained weights its
    filters are the mean of the RGB filters).
    """

    def __init__(
        self,
        name: str = "resnet50",
        *,
        pretrained: bool | str = False,
        output_stride: int = 32,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        if name not in BACKBONES:
            raise ValueError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}")
        if output_stride not in (8, 16, 32):
            raise ValueError(f"output_stride must be 8, 16 or 32, got {output_stride}")
        source = resolve(pretrained)  # checked by build_model, before anything is built
        weights = models.get_model_weights(name).DEFAULT if source == "imagenet" else None
        resnet = models.get_model(name, weights=weights)
        if source not in (None, "imagenet"):
            _load(resnet, load_state_dict(source), source)
        if in_channels != 3:
            resnet.conv1 = _first_conv(resnet.conv1, in_channels)
        self.name = name
        self.in_channels = in_channels
        self.output_stride = output_stride
        self.stem = nn.Sequential(resnet.conv1, resnet.bn1, resnet.relu, resnet.maxpool)
        self.layer1, self.layer2 = resnet.layer1, resnet.layer2
        self.layer3, self.layer4 = resnet.layer3, resnet.layer4
        expansion = type(resnet.layer1[0]).expansion  # 1 for BasicBlock, 4 for Bottleneck
        self.channels: tuple[int, ...] = tuple(64 * 2**i * expansion for i in range(4))
        reductions = [4, 8, 16, 32]
        dilation = 1
        for i in range(4):  # replace the stride of every stage past the output stride
            if reductions[i] > output_stride:
                new_dilation = dilation * 2
                dilate_stage(self.stages[i], dilation=new_dilation, previous_dilation=dilation)
                dilation = new_dilation
                reductions[i] = output_stride
        self.reductions: tuple[int, ...] = tuple(reductions)

    @property
    def stages(self) -> list[nn.Sequential]:
        return [self.layer1, self.layer2, self.layer3, self.layer4]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)  # (N, 64, H/4, W/4)
        features = []
        for stage in self.stages:
            x = stage(x)  # (N, channels[i], H/reductions[i], W/reductions[i])
            features.append(x)
        return features


def dilate_stage(stage: nn.Sequential, dilation: int, previous_dilation: int) -> None:
    """Turn a strided ResNet stage into a dilated one, in place.

    As in DeepLab and torchvision: the first block keeps the previous dilation and loses its
    stride (on its 3x3 convolution and on its 1x1 shortcut); every later block uses
    ``dilation``. Padding equals dilation, so spatial sizes are kept.
    """
    for i, block in enumerate(stage):
        d = previous_dilation if i == 0 else dilation
        for module in block.modules():
            if isinstance(module, nn.Conv2d):
                if module.stride != (1, 1):
                    module.stride = (1, 1)
                if module.kernel_size == (3, 3):
                    module.dilation, module.padding = (d, d), (d, d)


def _load(resnet: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load a backbone state dict into a torchvision ResNet; only its classifier may be
    missing."""
    missing, unexpected = resnet.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith("fc.")]
    if missing or unexpected:
        raise ValueError(f"the backbone weights {source!r} do not fit this ResNet: missing "
                         f"{missing[:3]}, unexpected {unexpected[:3]}; they must be a state dict "
                         f"of the same torchvision ResNet")


def _first_conv(conv1: nn.Conv2d, in_channels: int) -> nn.Conv2d:
    new = nn.Conv2d(in_channels, conv1.out_channels, 7, stride=2, padding=3, bias=False)
    with torch.no_grad():
        new.weight.copy_(conv1.weight.mean(dim=1, keepdim=True).expand_as(new.weight))
    return new
