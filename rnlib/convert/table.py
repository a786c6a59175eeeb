"""The conversion table: every tensor's key in the authors' code and in rnlib, and its shape."""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache
from typing import NamedTuple

from .architectures import architecture

# The released configuration (rnlib's defaults): decoder widths on layer4's path and on the
# others, RCUs per backbone path, output RCUs and pooling blocks per RefineNet block.
WIDTHS = (512, 256)
STAGE_CHANNELS = (256, 512, 1024, 2048)  # bottleneck ResNet layer1..layer4
RCUS, OUT_RCUS, CRP_BLOCKS = 2, 3, 4
BN_TENSORS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


class Entry(NamedTuple):
    """One tensor: the authors' key, rnlib's key, and its shape."""

    authors: str
    rnlib: str
    shape: tuple[int, ...]


# --- the table -----------------------------------------------------------------------------

@lru_cache(maxsize=32)
def key_table(arch: str, num_classes: int = 21) -> tuple[Entry, ...]:
    """Every tensor of ``arch`` with ``num_classes`` classes: backbone, then block by block.

    The backbone keys are the same on both sides (both are torchvision-style ResNets) but for
    the stem; the decoder's are renamed block by block. The authors count their RefineNet
    blocks g = 1..4 from the coarsest (layer4) on; rnlib's ``decoder.blocks`` are 0..3 in the
    same order, and its ``decoder.adapt`` is keyed by the stage it adapts (3 = layer4).
    """
    spec = architecture(arch)
    return tuple(_backbone(spec.depths)) + tuple(_decoder(spec.light, num_classes))


def _backbone(depths: tuple[int, ...]) -> Iterator[Entry]:
    yield Entry("conv1.weight", "backbone.stem.0.weight", (64, 3, 7, 7))
    yield from _batchnorm("bn1", "backbone.stem.1", 64)
    inplanes = 64
    for stage, depth in enumerate(depths, start=1):
        planes = 64 * 2 ** (stage - 1)
        for b in range(depth):
            key = f"layer{stage}.{b}"
            convs = [(planes, inplanes if b == 0 else 4 * planes, 1, 1),  # conv1, 1x1
                     (planes, planes, 3, 3),  # conv2, 3x3 (carries the stage's stride)
                     (4 * planes, planes, 1, 1)]  # conv3, 1x1
            for i, shape in enumerate(convs, start=1):
                yield Entry(f"{key}.conv{i}.weight", f"backbone.{key}.conv{i}.weight", shape)
                yield from _batchnorm(f"{key}.bn{i}", f"backbone.{key}.bn{i}", shape[0])
            if b == 0:  # the projection shortcut of each stage's first block
                yield Entry(f"{key}.downsample.0.weight", f"backbone.{key}.downsample.0.weight",
                            (4 * planes, inplanes, 1, 1))
                yield from _batchnorm(f"{key}.downsample.1", f"backbone.{key}.downsample.1",
                                      4 * planes)
        inplanes = 4 * planes


def _batchnorm(authors: str, rnlib: str, channels: int) -> Iterator[Entry]:
    for name in BN_TENSORS:
        shape = () if name == "num_batches_tracked" else (channels,)
        yield Entry(f"{authors}.{name}", f"{rnlib}.{name}", shape)


def _decoder(light: bool, num_classes: int) -> Iterator[Entry]:
    k = 1 if light else 3  # kernel size of every decoder convolution but the classifier

    def width(g: int) -> int:  # width of RefineNet block g (1 = coarsest)
        return WIDTHS[0] if g == 1 else WIDTHS[1]

    for g in range(1, 5):
        stage, block, w = 4 - g, f"decoder.blocks.{g - 1}", width(g)
        # the input adaptation from the backbone's width to the block's
        yield Entry(f"p_ims1d2_outl{g}_dimred.weight", f"decoder.adapt.{stage}.weight",
                    (w, STAGE_CHANNELS[stage], k, k))
        if not light:  # adaptation RCUs on the backbone path
            yield from _rcus(f"adapt_stage{g}_b", f"{block}.adapt.0", RCUS, w)
        if g > 1:  # multi-resolution fusion: path 0 from the backbone, path 1 from block g-1
            yield Entry(f"adapt_stage{g}_b2_joint_varout_dimred.weight",
                        f"{block}.fuse.convs.0.weight", (w, w, k, k))
            yield Entry(f"mflow_conv_g{g - 1}_b3_joint_varout_dimred.weight",
                        f"{block}.fuse.convs.1.weight", (w, width(g - 1), k, k))
        for j in range(CRP_BLOCKS):  # chained residual pooling
            yield Entry(f"mflow_conv_g{g}_pool.0.{j + 1}_outvar_dimred.weight",
                        f"{block}.pool.convs.{j}.weight", (w, w, k, k))
        if not light:  # output RCUs
            yield from _rcus(f"mflow_conv_g{g}_b", f"{block}.out", OUT_RCUS, w)
    yield Entry("clf_conv.weight", "decoder.classifier.weight", (num_classes, WIDTHS[1], 3, 3))
    yield Entry("clf_conv.bias", "decoder.classifier.bias", (num_classes,))


def _rcus(authors: str, rnlib: str, count: int, w: int) -> Iterator[Entry]:
    """The authors' RCUBlock (one module holding ``count`` units) -> rnlib's RCUs."""
    for i in range(count):
        unit = f"{authors}.0.{i + 1}"
        yield Entry(f"{unit}_conv.weight", f"{rnlib}.{i}.conv1.weight", (w, w, 3, 3))
        yield Entry(f"{unit}_conv.bias", f"{rnlib}.{i}.conv1.bias", (w,))
        yield Entry(f"{unit}_conv_relu_varout_dimred.weight", f"{rnlib}.{i}.conv2.weight",
                    (w, w, 3, 3))


