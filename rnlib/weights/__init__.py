"""Pretrained backbone weights, each with its provenance.

RefineNet fine-tunes an ImageNet-pretrained ResNet (Lin et al., §4). ``pretrained_backbone``
names where a model's backbone weights come from:

- ``False``: random initial weights;
- ``"imagenet"`` (or ``True``): torchvision's ImageNet weights, downloaded on first use; the
  choice for real photographs (PASCAL VOC, Pets, your own), wherever a download works;
- ``"glyphs"``: the course's ResNet-18, pretrained offline on Glyphs classification
  (:mod:`rnlib.data.glyphs`) by ``tools/pretrain_backbone.py`` and shipped in this folder,
  so that every machine, Colab and CI included, fine-tunes from the same weights;
- a path: a state dict of a torchvision ResNet (keys ``conv1.*``, ``bn1.*``, ``layer1.*``..).

Files are plain state dicts read with ``torch.load(..., weights_only=True)``: no code runs.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..safeload import load_safely

__all__ = ["SHIPPED", "resolve", "check_pretrained", "provenance", "load_state_dict"]

FOLDER = Path(__file__).resolve().parent
SHIPPED = {"glyphs": ("resnet18", "glyphs-resnet18.pt")}  # name: (backbone, file)


def resolve(spec: bool | str | None) -> str | None:
    """``None`` for random weights, else ``"imagenet"``, a shipped name, or a path."""
    if spec is None or spec is False or spec == "":
        return None
    if spec is True:
        return "imagenet"
    if not isinstance(spec, str):
        raise ValueError(f"pretrained_backbone must be False, True, 'imagenet', "
                         f"{', '.join(repr(n) for n in SHIPPED)} or a file path, got {spec!r}")
    return spec


def check_pretrained(spec: bool | str | None, backbone: str) -> None:
    """Raise a clear error, before anything is built, for weights that cannot serve
    ``backbone``."""
    name = resolve(spec)
    if name is None or name == "imagenet":
        return
    if name in SHIPPED:
        arch, file = SHIPPED[name]
        if arch != backbone:
            raise ValueError(f"the {name!r} weights are for {arch}, not {backbone}; use "
                             f"backbone={arch!r}, or pretrained_backbone='imagenet'")
        if not (FOLDER / file).exists():
            raise FileNotFoundError(f"{FOLDER / file} is missing from this installation; "
                                    f"reinstall rnlib or run tools/pretrain_backbone.py")
        return
    if not Path(name).is_file():
        raise FileNotFoundError(f"pretrained_backbone={name!r} is neither 'imagenet', "
                                f"{', '.join(repr(n) for n in SHIPPED)} nor an existing file")


def provenance(name: str) -> dict:
    """How the shipped weights ``name`` were made: command, time, accuracy, checksum."""
    _, file = SHIPPED[name]
    return json.loads((FOLDER / file).with_suffix(".json").read_text())


def load_state_dict(spec: str) -> dict[str, torch.Tensor]:
    """The state dict of a shipped name or a file (float32), for a torchvision ResNet."""
    path = FOLDER / SHIPPED[spec][1] if spec in SHIPPED else Path(spec)
    state = load_safely(path, "backbone weights", missing="pass 'imagenet', "
                        f"{', '.join(repr(n) for n in SHIPPED)} or the path of a state dict",
                        fix="it must be a state dict of tensors "
                            "(torch.save(model.state_dict(), path))",
                        if_trusted="save the state dict in it alone (torch.save(state_dict, "
                                   "path)) and pass that file")
    return {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
