"""Every network of the course, built by name: ``build_model("refinenet", num_classes=21)``."""

# importing a model module registers its builders; this order is list_models() order
from . import refinenet  # noqa: F401  isort: skip
from . import fcn, dilated, torchvision_refs  # noqa: F401  isort: skip
from .base import SegmentationModel, check_images
from .registry import build_model, describe_models, list_models, model_options, register

__all__ = ["SegmentationModel", "build_model", "check_images", "describe_models", "list_models",
           "model_options", "register"]
