"""rnlib: RefineNet (Lin et al., CVPR 2017) built step by step, with its baselines.

>>> import rnlib
>>> model = rnlib.build_model("refinenet", num_classes=21, backbone="resnet101")
"""

from . import bench, blocks, metrics
from .models import build_model, describe_models, list_models

__version__ = "0.1.0"
__all__ = ["bench", "blocks", "build_model", "describe_models", "list_models", "metrics",
           "__version__"]
