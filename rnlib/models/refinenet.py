"""RefineNet (Lin et al., CVPR 2017) and Light-Weight RefineNet (Nekrasov et al., BMVC 2018).

The decoder is a loop over a cascade of :class:`~rnlib.blocks.RefineNetBlock`, coarsest first
(§3.1, Fig. 2c). Each block takes some backbone features (after a convolution that adapts their
width: 512 for the coarsest stage, 256 for the others) and the previous block's output.
Which features go to which block is the cascade's ``groups``; every variant takes all four
stages, and they differ in how many blocks refine them:

    4-cascade (Fig. 2c)         [(3,), (2,), (1,), (0,)]   one stage per block
    2-cascade (§4.3, Fig. 7b)   [(2, 3), (0, 1)]
    1-cascade (§4.3, Fig. 7a)   [(0, 1, 2, 3)]            one block takes all four stages
    2-scale   (§4.3, Fig. 7c)   [(3, 7), (2, 6), (1, 5), (0, 4)]  two ResNets, scales 1.2 and 0.6
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from fractions import Fraction
from functools import partial

import torch
from torch import nn

from ..backbones import ResNetBackbone
from ..blocks import RCU, ChainedResidualPooling, RefineNetBlock, conv, resize
from .base import SegmentationModel
from .registry import register

__all__ = ["CASCADES", "RefineNetDecoder", "MultiScaleBackbone", "refinenet"]

CASCADES: dict[str, list[tuple[int, ...]]] = {
    "4-cascade": [(3,), (2,), (1,), (0,)],
    "2-cascade": [(2, 3), (0, 1)],
    "1-cascade": [(0, 1, 2, 3)],
    "2-scale": [(3, 7), (2, 6), (1, 5), (0, 4)],
}


class RefineNetDecoder(nn.Module):
    """adapt each used feature -> cascade of RefineNet blocks -> dropout -> 3x3 classifier.

    ``channels`` are the backbone's feature widths; feature ``i`` is at stage ``i % 4``.
    ``widths`` = (width of the coarsest stage's path, width of the others): (512, 256) in the
    paper; narrower decoders are much cheaper on a CPU. ``light=True`` gives Light-Weight
    RefineNet: 1x1 convolutions, no RCUs. ``feature_dropout`` applies to the features of the
    two coarsest stages (layer3, layer4) and ``classifier_dropout`` to the classifier's input,
    as in the released code (0.5 and 0.5; Light-Weight RefineNet 0.5 and 0).
    ``align_corners`` is the convention of every resize in the decoder (True, as the
    authors' ``nn.Upsample``; with it rnlib computes the released models' function exactly).
    ``residual_init="zero"`` starts the last convolution of every residual branch (each RCU's
    second, each pooling block's) at zero, so that every block starts as the identity;
    ``"default"`` keeps PyTorch's initialisation, as the released code does.
    ``shortcuts=False`` drops the identity path of every RCU and CRP (§3.3's short-range
    identity mappings), for the ablation that measures them.
    ``norm="fusion"`` adds a BatchNorm to each fusion term of every block (not in the paper;
    see :class:`~rnlib.blocks.RefineNetBlock`).
    """

    RESIDUAL_INITS = ("default", "zero")

    def __init__(
        self,
        channels: Sequence[int],
        num_classes: int,
        *,
        groups: Sequence[Sequence[int]] = CASCADES["4-cascade"],
        widths: tuple[int, int] = (512, 256),
        light: bool = False,
        rcus: int = 2,
        out_rcus: int = 3,
        crp_blocks: int = 4,
        crp_order: str = "pool-conv",
        feature_dropout: float = 0.5,
        classifier_dropout: float = 0.5,
        align_corners: bool = True,
        residual_init: str = "default",
        norm: str = "none",
        shortcuts: bool = True,
    ) -> None:
        super().__init__()
        if len(widths) != 2:
            raise ValueError(f"widths is (coarsest path's width, the other paths' width), "
                             f"two numbers, got {tuple(widths)}")
        if residual_init not in self.RESIDUAL_INITS:
            raise ValueError(f"residual_init must be one of {self.RESIDUAL_INITS}, "
                             f"got {residual_init!r}")
        if residual_init == "zero" and not shortcuts:
            raise ValueError("residual_init='zero' with shortcuts=False would make every block "
                             "output zeros; keep the shortcuts or the default initialisation")
        kernel = 1 if light else 3
        if light:
            rcus = out_rcus = 0
        self.groups = [tuple(g) for g in groups]
        self.align_corners = align_corners
        used = sorted(i for g in self.groups for i in g)
        if any(i >= len(channels) for i in used) or len(set(used)) != len(used):
            raise ValueError(f"cascade groups {self.groups} do not fit {len(channels)} features")
        path_width = {i: widths[0] if i % 4 == 3 else widths[1] for i in used}
        self.adapt = nn.ModuleDict({str(i): conv(channels[i], path_width[i], kernel) for i in used})
        self.feature_dropout = nn.Dropout(feature_dropout)
        self.classifier_dropout = nn.Dropout(classifier_dropout)
        self.blocks = nn.ModuleList()
        previous: list[int] = []  # the previous block's output width, once there is one
        for group in self.groups:
            in_channels = [path_width[i] for i in group] + previous
            out_channels = min(in_channels)
            self.blocks.append(RefineNetBlock(
                in_channels, out_channels,
                rcus_per_path=[rcus] * len(group) + [0] * len(previous),
                crp_blocks=crp_blocks, out_rcus=out_rcus, kernel_size=kernel, crp_order=crp_order,
                align_corners=align_corners, norm=norm, shortcuts=shortcuts,
            ))
            previous = [out_channels]
        self.classifier = nn.Conv2d(previous[0], num_classes, 3, padding=1, bias=True)
        if residual_init == "zero":
            self._zero_residual_branches()

    def _zero_residual_branches(self) -> None:
        """Every RCU's second convolution and every pooling block's at zero: each block starts
        as the identity."""
        for module in self.blocks.modules():
            if isinstance(module, RCU):
                nn.init.zeros_(module.conv2.weight)
            if isinstance(module, ChainedResidualPooling):
                for conv_ in module.convs:
                    nn.init.zeros_(conv_.weight)

    def forward(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        paths = {}
        for key, adapt in self.adapt.items():
            i = int(key)
            x = features[i]
            paths[i] = adapt(self.feature_dropout(x) if i % 4 >= 2 else x)  # layer3, layer4
        x: list[torch.Tensor] = []
        for block, group in zip(self.blocks, self.groups):
            x = [block([paths[i] for i in group] + x)]  # (N, width, H_finest, W_finest)
        return self.classifier(self.classifier_dropout(x[0]))  # (N, K, H/4, W/4)


class MultiScaleBackbone(nn.Module):
    """Independent backbones on rescaled copies of the input; their features concatenated."""

    def __init__(self, backbones: Sequence[ResNetBackbone], scales: Sequence[float],
                 align_corners: bool = True) -> None:
        super().__init__()
        self.backbones = nn.ModuleList(backbones)
        self.scales = tuple(scales)
        self.align_corners = align_corners
        self.channels = tuple(c for b in backbones for c in b.channels)
        self.reductions = tuple(r for b in backbones for r in b.reductions)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for backbone, scale in zip(self.backbones, self.scales):
            # round(s * scale) in integers (1.2 = 6/5: (6 * s + 2) // 5), the same sizes, and
            # ones torch.export keeps symbolic (rnlib.export cannot store Python's round())
            f = Fraction(scale).limit_denominator(100)
            size = [max(1, (s * f.numerator + f.denominator // 2) // f.denominator)
                    for s in x.shape[-2:]]
            features += backbone(resize(x, size, self.align_corners))
        return features


def refinenet(
    *,
    num_classes: int,
    backbone: str = "resnet50",
    pretrained_backbone: bool = False,
    in_channels: int = 3,
    cascade: str = "4-cascade",
    stages: Sequence[int] = (0, 1, 2, 3),
    **options,
) -> SegmentationModel:
    """RefineNet on a ResNet; ``cascade`` is one of :data:`CASCADES`, ``options`` go to
    :class:`RefineNetDecoder` (widths, rcus, out_rcus, crp_blocks, crp_order, feature_dropout,
    classifier_dropout, align_corners, light). ``stages`` are the backbone stages whose
    features the decoder takes (0: layer1 ... 3: layer4; all four in the paper, §3.1): the
    others' paths, and blocks left without a path, are not built. Every resize of the model,
    the final one to the input's size included, follows ``align_corners``."""
    if cascade not in CASCADES:
        raise ValueError(f"unknown cascade {cascade!r}; choose one of {', '.join(CASCADES)}")
    if not stages or not set(stages) <= {0, 1, 2, 3} or len(set(stages)) != len(stages):
        raise ValueError(f"stages must be distinct backbone stages among 0, 1, 2, 3 "
                         f"(layer1..layer4), got {stages!r}")
    groups = [g for g in ([i for i in group if i % 4 in stages] for group in CASCADES[cascade])
              if g]
    align_corners = options.get("align_corners", True)

    def make_backbone() -> ResNetBackbone:
        return ResNetBackbone(backbone, pretrained=pretrained_backbone, in_channels=in_channels)

    if cascade == "2-scale":
        encoder: nn.Module = MultiScaleBackbone([make_backbone(), make_backbone()], (1.2, 0.6),
                                                align_corners)
    else:
        encoder = make_backbone()
    decoder = RefineNetDecoder(encoder.channels, num_classes, groups=groups, **options)
    return SegmentationModel(encoder, decoder, num_classes=num_classes, in_channels=in_channels,
                             align_corners=align_corners)


def decoder_options(*, light: bool = False) -> dict[str, object]:
    """The options a RefineNet takes (those of :class:`RefineNetDecoder` that the cascade does
    not fix, and ``stages``) with their defaults; Light-Weight RefineNet has no RCUs and no
    classifier dropout."""
    params = inspect.signature(RefineNetDecoder.__init__).parameters
    options = {k: p.default for k, p in params.items()
               if p.kind is p.KEYWORD_ONLY and k not in ("groups", "light")}
    options["stages"] = inspect.signature(refinenet).parameters["stages"].default
    if light:
        del options["rcus"], options["out_rcus"]
        options["classifier_dropout"] = 0.0
    return options


for _name, _cascade in [("refinenet", "4-cascade"), ("refinenet-2cascade", "2-cascade"),
                        ("refinenet-1cascade", "1-cascade"), ("refinenet-2scale", "2-scale")]:
    register(_name, doc=f"RefineNet, {_cascade}", options=decoder_options())(
        partial(refinenet, cascade=_cascade))


@register("refinenet-lw", doc="Light-Weight RefineNet (1x1 convs, no RCUs, 4-block CRP)",
          options=decoder_options(light=True))
def refinenet_lw(**kw) -> SegmentationModel:
    kw.setdefault("classifier_dropout", 0.0)  # the released code drops out layer3 and layer4 only
    return refinenet(light=True, **kw)
