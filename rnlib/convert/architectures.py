"""The authors' networks that rnlib converts, and the files of weights they published."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple


@dataclass(frozen=True)
class Architecture:
    """One network of the authors, and the rnlib model that computes the same function."""

    name: str
    model: str  # rnlib's registry name
    backbone: str  # rnlib's backbone name
    depths: tuple[int, int, int, int]  # bottleneck blocks in layer1..layer4
    light: bool  # Light-Weight RefineNet: 1x1 convolutions, no RCUs
    authors: str  # where their code builds it


ARCHITECTURES: dict[str, Architecture] = {a.name: a for a in [
    Architecture("lw-50", "refinenet-lw", "resnet50", (3, 4, 6, 3), True,
                 "rf_lw50, DrSleep/light-weight-refinenet models/resnet.py"),
    Architecture("lw-101", "refinenet-lw", "resnet101", (3, 4, 23, 3), True,
                 "rf_lw101, DrSleep/light-weight-refinenet models/resnet.py"),
    Architecture("lw-152", "refinenet-lw", "resnet152", (3, 8, 36, 3), True,
                 "rf_lw152, DrSleep/light-weight-refinenet models/resnet.py"),
    Architecture("refinenet-101", "refinenet", "resnet101", (3, 4, 23, 3), False,
                 "rf101, DrSleep/refinenet-pytorch models/resnet.py"),
    Architecture("refinenet-152", "refinenet", "resnet152", (3, 8, 36, 3), False,
                 "RefineNet(Bottleneck, [3, 8, 36, 3]), DrSleep/refinenet-pytorch "
                 "models/resnet.py (no weights published)"),
]}


class Release(NamedTuple):
    """One file of weights the authors published for PyTorch (rnlib never downloads it)."""

    arch: str
    dataset: str
    num_classes: int
    url: str


_CLOUDSTOR = "https://cloudstor.aarnet.edu.au/plus/s/{}/download"
# From the authors' models/resnet.py (``models_urls``) of each repository.
RELEASES: tuple[Release, ...] = tuple(Release(a, d, k, _CLOUDSTOR.format(u)) for a, d, k, u in [
    ("lw-50", "PASCAL VOC (trained on COCO+BSD+VOC, 2020)", 21, "xp7GcVKC0GbxhTv"),
    ("lw-101", "PASCAL VOC", 21, "CPRKWiaCIDRdOwF"),
    ("lw-152", "PASCAL VOC", 21, "2w8bFOd45JtPqbD"),
    ("lw-50", "PASCAL Person-Part", 7, "mLA7NxVSPjNL7Oo"),
    ("lw-101", "PASCAL Person-Part", 7, "f1tGGpwdCnYS3xu"),
    ("lw-152", "PASCAL Person-Part", 7, "Ql64rWqiTvWGAA0"),
    ("lw-50", "NYUv2", 40, "gE8dnQmHr9svpfu"),
    ("lw-101", "NYUv2", 40, "VnsaSUHNZkuIqeB"),
    ("lw-152", "NYUv2", 40, "EkPQzB2KtrrDnKf"),
    ("lw-101", "PASCAL-Context", 60, "hqmplxWOBbOYYjN"),
    ("lw-152", "PASCAL-Context", 60, "O84NszlYlsu00fW"),
    ("refinenet-101", "PASCAL VOC", 21, "Owmttk9bdPROwc6"),
])


def architecture(arch: str) -> Architecture:
    """The entry of :data:`ARCHITECTURES` named ``arch``, or a ValueError listing them."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; rnlib converts "
                         f"{', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[arch]
