"""The numbers every part of rnlib agrees on. This module imports nothing, so the modules that
need them (metrics, evaluation, plots) do not pull in the data pipeline."""

IGNORE_INDEX = 255  # the label of pixels that count for no class (VOC's borders, crop padding)
# ImageNet's per-channel mean and standard deviation of RGB in [0, 1]: the statistics the
# torchvision backbones were trained with, so every image is normalised with them
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
