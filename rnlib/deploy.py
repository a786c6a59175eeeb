"""Inference-time rewrites: fold every batch norm into the convolution before it.

In eval mode ``bn(conv(x))`` is one convolution with scaled weights and a bias; folding saves a
pass over every feature map (notebook 10 derives it). Works on torchvision's ResNet blocks
(``convN`` followed by ``bnN``, and the ``downsample`` shortcut) and on any ``nn.Sequential``
holding a convolution followed by a batch norm.
"""

from __future__ import annotations

import copy

from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

__all__ = ["fuse_batchnorm"]


def fuse_batchnorm(model: nn.Module) -> nn.Module:
    """A copy of ``model`` in eval mode with each conv + batch-norm pair folded into one conv."""
    model = copy.deepcopy(model).eval()
    for module in model.modules():
        if isinstance(module, nn.Sequential):
            for i in range(len(module) - 1):
                if isinstance(module[i], nn.Conv2d) and isinstance(module[i + 1], nn.BatchNorm2d):
                    module[i] = fuse_conv_bn_eval(module[i], module[i + 1])
                    module[i + 1] = nn.Identity()
        for k in range(1, 4):  # torchvision's BasicBlock / Bottleneck: convK then bnK
            conv, bn = getattr(module, f"conv{k}", None), getattr(module, f"bn{k}", None)
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                setattr(module, f"conv{k}", fuse_conv_bn_eval(conv, bn))
                setattr(module, f"bn{k}", nn.Identity())
    return model
