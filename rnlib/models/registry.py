"""One registry for every model: ``build_model(name, num_classes=..., ...)``.

A builder is a keyword-only function ``(*, num_classes, backbone, pretrained_backbone,
in_channels, **options) -> nn.Module`` that returns logits (N, num_classes, H, W).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable

from torch import nn

from ..backbones import BACKBONES

__all__ = ["register", "build_model", "list_models", "describe_models"]

_BUILDERS: dict[str, Callable[..., nn.Module]] = {}
_DOCS: dict[str, str] = {}


def register(name: str, doc: str = "") -> Callable:
    """Decorator that adds a builder to the registry under ``name``."""

    def add(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _BUILDERS:
            raise ValueError(f"model {name!r} is registered twice")
        _BUILDERS[name] = builder
        _DOCS[name] = doc
        return builder

    return add


def list_models() -> list[str]:
    """Names of every registered model, in registration order."""
    return list(_BUILDERS)


def describe_models() -> dict[str, str]:
    """Each model's name and a one-line description."""
    return dict(_DOCS)


def build_model(
    name: str,
    *,
    num_classes: int,
    backbone: str = "resnet50",
    pretrained_backbone: bool = False,
    in_channels: int = 3,
    **options,
) -> nn.Module:
    """Build a registered model. Raises a clear error for unknown names and bad sizes."""
    if name not in _BUILDERS:
        close = difflib.get_close_matches(name, _BUILDERS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown model {name!r}.{hint} Known models: {', '.join(_BUILDERS)}")
    if backbone not in BACKBONES:
        close = difflib.get_close_matches(backbone, BACKBONES, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown backbone {backbone!r}.{hint} "
                         f"Choose one of {', '.join(BACKBONES)}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a whole number >= 1 (background counts as a "
                         f"class), got {num_classes!r}")
    if isinstance(in_channels, bool) or not isinstance(in_channels, int) or in_channels < 1:
        raise ValueError(f"in_channels must be a whole number >= 1, got {in_channels!r}")
    return _BUILDERS[name](num_classes=num_classes, backbone=backbone,
                           pretrained_backbone=pretrained_backbone, in_channels=in_channels,
                           **options)
