"""Exercise 2.1: stage_sizes(height, width) -> [(h, w) of layer1..layer4]."""

import functools
import math

import torch

from corpus import expect
from rnlib.backbones import ResNetBackbone

EXERCISE = "2.1"


def correct_layer_by_layer(height, width):
    def down(n, k, p):
        return (n + 2 * p - k) // 2 + 1
    h, w = down(down(height, 7, 3), 3, 1), down(down(width, 7, 3), 3, 1)
    sizes = [(h, w)]
    for _ in range(3):
        h, w = down(h, 3, 1), down(w, 3, 1)
        sizes.append((h, w))
    return sizes


def correct_ceil_division(height, width):
    return [(math.ceil(height / r), math.ceil(width / r)) for r in (4, 8, 16, 32)]


@functools.cache
def _network():
    return ResNetBackbone("resnet18").eval()


def correct_run_the_network(height, width):
    with torch.no_grad():
        return [tuple(f.shape[-2:]) for f in _network()(torch.zeros(1, 3, height, width))]


@expect(r"each halving rounds down")
def wrong_plain_division(height, width):
    return [(height // r, width // r) for r in (4, 8, 16, 32)]


@expect(r"height and width are swapped")
def wrong_swapped(height, width):
    return [(math.ceil(width / r), math.ceil(height / r)) for r in (4, 8, 16, 32)]


@expect(r"max pooling of the stem is missing")
def wrong_without_the_max_pooling(height, width):
    return [(math.ceil(height / r), math.ceil(width / r)) for r in (2, 4, 8, 16)]


@expect(r"it returns 5 sizes")
def wrong_includes_the_stem(height, width):
    return [(math.ceil(height / r), math.ceil(width / r)) for r in (2, 4, 8, 16, 32)]


@expect(r"for a \d+x\d+ input the sizes differ")
def wrong_rounds(height, width):
    return [(round(height / r), round(width / r)) for r in (4, 8, 16, 32)]
