"""One registry for every model: ``build_model(name, num_classes=..., ...)``.

A builder is a keyword-only function ``(*, num_classes, backbone, pretrained_backbone,
in_channels, **options) -> nn.Module`` that returns logits (N, num_classes, H, W). Each model
declares the options it takes with their defaults, so that an unknown option or a value of
the wrong type is refused, by name, before anything is built or trained.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from torch import nn

from ..backbones import BACKBONES
from ..suggest import did_you_mean
from ..weights import check_pretrained

__all__ = ["register", "build_model", "list_models", "describe_models", "model_options",
           "check_options"]

_BUILDERS: dict[str, Callable[..., nn.Module]] = {}
_DOCS: dict[str, str] = {}
_OPTIONS: dict[str, dict[str, object]] = {}


def register(name: str, doc: str = "", options: Mapping[str, object] = ()) -> Callable:
    """Decorator that adds a builder to the registry under ``name``; ``options`` maps each
    option the builder takes to its default."""

    def add(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _BUILDERS:
            raise ValueError(f"model {name!r} is registered twice")
        _BUILDERS[name] = builder
        _DOCS[name] = doc
        _OPTIONS[name] = dict(options)
        return builder

    return add


def model_options(name: str) -> dict[str, object]:
    """The options ``name`` takes, with their defaults."""
    _check_name(name)
    return dict(_OPTIONS[name])


def _check_name(name: str) -> None:
    if name not in _BUILDERS:
        raise ValueError(f"unknown model {name!r}.{did_you_mean(name, _BUILDERS)} "
                         f"Known models: {', '.join(_BUILDERS)}")


def _fits(value: object, default: object) -> bool:
    """Whether ``value`` has the type of the option whose default is ``default``."""
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(default, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    if isinstance(default, (tuple, list)):  # how many entries is the builder's to check
        return isinstance(value, (tuple, list)) and bool(value) and all(
            _fits(v, default[0]) for v in value)
    return isinstance(value, type(default))


def check_options(name: str, options: Mapping[str, object]) -> None:
    """Raise a clear error for an option ``name`` does not take or a value of the wrong type."""
    known = model_options(name)
    for key, value in options.items():
        if key not in known:
            takes = f"takes {', '.join(known)}" if known else "takes no options"
            raise ValueError(f"{name} has no option {key!r}.{did_you_mean(key, known)} "
                             f"It {takes}")
        if not _fits(value, known[key]):
            raise ValueError(f"{name}'s option {key}={value!r} should be like its default "
                             f"{known[key]!r} ({type(known[key]).__name__})")


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
    """Build a registered model. Raises a clear error for unknown names, options and sizes.

    ``pretrained_backbone``: False (random weights), ``"imagenet"`` or True (torchvision's
    ImageNet weights, a download), ``"glyphs"`` (the course's ResNet-18 pretrained offline,
    shipped with rnlib: :mod:`rnlib.weights`), or the path of a backbone state dict.
    """
    _check_name(name)
    check_options(name, options)
    if backbone not in BACKBONES:
        raise ValueError(f"unknown backbone {backbone!r}.{did_you_mean(backbone, BACKBONES)} "
                         f"Choose one of {', '.join(BACKBONES)}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a whole number >= 1 (background counts as a "
                         f"class), got {num_classes!r}")
    if isinstance(in_channels, bool) or not isinstance(in_channels, int) or in_channels < 1:
        raise ValueError(f"in_channels must be a whole number >= 1, got {in_channels!r}")
    check_pretrained(pretrained_backbone, backbone)
    return _BUILDERS[name](num_classes=num_classes, backbone=backbone,
                           pretrained_backbone=pretrained_backbone, in_channels=in_channels,
                           **options)
