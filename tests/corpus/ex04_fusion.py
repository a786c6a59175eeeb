"""Exercise 4.1: MultiResolutionFusion(in_channels, out_channels), forward(xs) -> one map."""

import torch
import torch.nn.functional as F
from torch import nn

from rnlib import blocks

EXERCISE = "4.1"


class _Convs(nn.Module):
    """The convolutions as the exercise's scaffold creates them."""

    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.single = len(in_channels) == 1 and in_channels[0] == out_channels
        self.convs = None if self.single else nn.ModuleList(
            nn.Conv2d(c, out_channels, 3, padding=1, bias=False) for c in in_channels)


def _largest(xs):
    return max((x.shape[-2:] for x in xs), key=lambda hw: hw[0] * hw[1])


# -- correct ---------------------------------------------------------------------------------
class correct_as_in_the_authors_code(_Convs):
    def forward(self, xs):
        if self.single:
            return xs[0]
        size = _largest(xs)
        out = 0
        for conv, x in zip(self.convs, xs):
            out = out + F.interpolate(conv(x), size=size, mode="bilinear", align_corners=True)
        return out


class correct_align_corners_false(_Convs):
    NOTE = r"align_corners=False; the authors' code .* use align_corners=True"

    def forward(self, xs):
        if self.single:
            return xs[0]
        size = _largest(xs)
        return sum(blocks.resize(conv(x), size) for conv, x in zip(self.convs, xs))


class correct_overwrites_its_input_list(nn.Module):
    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.passthrough = list(in_channels) == [out_channels]
        self.convs = nn.ModuleList() if self.passthrough else nn.ModuleList(
            nn.Conv2d(c, out_channels, 3, padding="same", bias=False) for c in in_channels)

    def forward(self, xs):
        if self.passthrough:
            return xs[0]
        for i in range(len(xs)):
            xs[i] = self.convs[i](xs[i])
        h = max(x.shape[2] for x in xs)
        w = max(x.shape[3] for x in xs)
        for i in range(len(xs)):
            xs[i] = F.interpolate(xs[i], size=(h, w), mode="bilinear", align_corners=True)
        return torch.stack(xs).sum(0)


class correct_module_dict_reversed_order(nn.Module):
    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.identity = len(in_channels) == 1 and in_channels[0] == out_channels
        pairs = [] if self.identity else reversed(list(enumerate(in_channels)))
        self.paths = nn.ModuleDict({str(i): nn.Conv2d(c, out_channels, 3, 1, 1, bias=False)
                                    for i, c in pairs})

    def forward(self, xs):
        if self.identity:
            return xs[0]
        target = max(xs, key=lambda x: x.shape[-1] * x.shape[-2]).shape[-2:]
        total = None
        for i in reversed(range(len(xs))):
            y = F.interpolate(self.paths[str(i)](xs[i]), size=target, mode="bilinear",
                              align_corners=True)
            total = y if total is None else total + y
        return total


class correct_sequential_per_path_created_backwards(nn.Module):
    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.single = len(in_channels) == 1 and in_channels[0] == out_channels
        convs = [nn.Sequential(nn.Conv2d(c, out_channels, 3, padding=1, bias=False))
                 for c in reversed(in_channels) if not self.single]
        self.convs = nn.ModuleList(convs)  # stored last path first

    def forward(self, xs):
        if self.single:
            return xs[0]
        size = _largest(xs)
        paths = [conv(x) for conv, x in zip(reversed(self.convs), xs)]
        return sum(nn.Upsample(size=tuple(size), mode="bilinear", align_corners=True)(p)
                   for p in paths)


class correct_with_biases(nn.Module):
    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.skip = len(in_channels) == 1 and in_channels[0] == out_channels
        if not self.skip:
            self.convs = nn.ModuleList(nn.Conv2d(c, out_channels, 3, padding=1)
                                       for c in in_channels)

    def forward(self, xs):
        if self.skip:
            return xs[0]
        size = _largest(xs)
        ys = [F.interpolate(c(x), size=size, mode="bilinear", align_corners=True)
              for c, x in zip(self.convs, xs)]
        return torch.sum(torch.stack(ys), dim=0)


# -- wrong -----------------------------------------------------------------------------------
class wrong_fixed_factor(_Convs):
    EXPECTED = r"resizes by a fixed factor \(scale_factor=2\)"

    def forward(self, xs):
        if self.single:
            return xs[0]
        out = self.convs[0](xs[0])
        for i, (conv, x) in enumerate(zip(self.convs[1:], xs[1:]), 1):
            out = out + F.interpolate(conv(x), scale_factor=2 ** i, mode="bilinear")
        return out


class wrong_nn_upsample_by_two(_Convs):
    EXPECTED = r"fixed factor \(scale_factor=2\.0\)"

    def __init__(self, in_channels, out_channels):
        super().__init__(in_channels, out_channels)
        self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True)

    def forward(self, xs):
        if self.single:
            return xs[0]
        out = self.convs[-1](xs[-1])
        for conv, x in zip(reversed(self.convs[:-1]), reversed(xs[:-1])):
            out = self.up(out) + conv(x)
        return out


class wrong_nearest(_Convs):
    EXPECTED = r"resizes with mode='nearest'"

    def forward(self, xs):
        if self.single:
            return xs[0]
        size = _largest(xs)
        return sum(F.interpolate(c(x), size=size) for c, x in zip(self.convs, xs))


class wrong_smallest_width(nn.Module):
    EXPECTED = r"gives \d+ channels, expected \d+\n.*\nHint: every path's convolution maps to out_channels"

    def __init__(self, in_channels, out_channels):
        super().__init__()
        width = min(in_channels)
        self.single = len(in_channels) == 1 and in_channels[0] == out_channels
        self.convs = nn.ModuleList(nn.Conv2d(c, width, 3, padding=1, bias=False)
                                   for c in in_channels)

    def forward(self, xs):
        if self.single:
            return xs[0]
        size = _largest(xs)
        return sum(blocks.resize(c(x), size, True) for c, x in zip(self.convs, xs))


class wrong_resize_before_conv(_Convs):
    EXPECTED = r"is applied to \d+ channels at \d+x\d+; rnlib's convolutions see .*\n.*\nHint: convolve each path at its own size first"

    def forward(self, xs):
        if self.single:
            return xs[0]
        size = _largest(xs)
        return sum(c(blocks.resize(x, size, True)) for c, x in zip(self.convs, xs))


class wrong_smallest_resolution(_Convs):
    EXPECTED = r"resizes to \d+x\d+, not to the largest input's"

    def forward(self, xs):
        if self.single:
            return xs[0]
        size = min((x.shape[-2:] for x in xs), key=lambda hw: hw[0] * hw[1])
        return sum(blocks.resize(c(x), size, True) for c, x in zip(self.convs, xs))


class wrong_first_input_assumed_largest(_Convs):
    EXPECTED = r"resizes to \d+x\d+, not to the largest input's .*\n.*\(built as \w+\(\[\d+(, \d+)+\]"

    def forward(self, xs):
        if self.single:
            return xs[0]
        size = xs[0].shape[-2:]
        return sum(blocks.resize(c(x), size, True) for c, x in zip(self.convs, xs))


class wrong_no_passthrough(nn.Module):
    EXPECTED = r"it has 1 nn.Conv2d layers; rnlib's has 0.*\n.*\nHint: with one input that already has out_channels channels, fusion passes it through"

    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(c, out_channels, 3, padding=1, bias=False)
                                   for c in in_channels)

    def forward(self, xs):
        size = _largest(xs)
        return sum(blocks.resize(c(x), size, True) for c, x in zip(self.convs, xs))


class wrong_concatenates(_Convs):
    EXPECTED = r"concatenates the paths"

    def forward(self, xs):
        if self.single:
            return xs[0]
        size = _largest(xs)
        return torch.cat([blocks.resize(c(x), size, True) for c, x in zip(self.convs, xs)], 1)


class wrong_averages(_Convs):
    EXPECTED = r"averages the paths"

    def forward(self, xs):
        if self.single:
            return xs[0]
        size = _largest(xs)
        return torch.stack([blocks.resize(c(x), size, True)
                            for c, x in zip(self.convs, xs)]).mean(0)


class wrong_relu_after_sum(_Convs):
    EXPECTED = r"ReLU after the sum"

    def forward(self, xs):
        if self.single:
            return xs[0]
        size = _largest(xs)
        return F.relu(sum(blocks.resize(c(x), size, True) for c, x in zip(self.convs, xs)))


class wrong_convs_in_reverse_order(nn.Module):
    EXPECTED = r"convolution 'convs.\d' \(made for \d+ channels\) is applied to \d+ channels at"

    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.single = len(in_channels) == 1 and in_channels[0] == out_channels
        self.convs = nn.ModuleList(nn.Conv2d(c, out_channels, 3, padding=1, bias=False)
                                   for c in reversed(in_channels))

    def forward(self, xs):
        if self.single:
            return xs[0]
        size = _largest(xs)
        return sum(blocks.resize(c(x), size, True) for c, x in zip(self.convs, xs))


class wrong_plain_list(nn.Module):
    EXPECTED = r"plain Python list"

    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.single = len(in_channels) == 1 and in_channels[0] == out_channels
        self.convs = [nn.Conv2d(c, out_channels, 3, padding=1, bias=False) for c in in_channels]

    def forward(self, xs):
        if self.single:
            return xs[0]
        size = _largest(xs)
        return sum(blocks.resize(c(x), size, True) for c, x in zip(self.convs, xs))


class wrong_never_resizes(_Convs):
    EXPECTED = r"it never resizes"

    def forward(self, xs):
        if self.single:
            return xs[0]
        return sum(c(x) for c, x in zip(self.convs, xs))


class wrong_changes_input_tensors(_Convs):
    EXPECTED = r"changes the tensor of input path 0 in place"

    def forward(self, xs):
        if self.single:
            return xs[0]
        size = _largest(xs)
        out = self.convs[0](xs[0].relu_())
        out = blocks.resize(out, size, True)
        for c, x in zip(self.convs[1:], xs[1:]):
            out = out + blocks.resize(c(x), size, True)
        return out


# -- sizes from the inputs, on every call ------------------------------------------------------
class wrong_largest_by_numel(_Convs):
    EXPECTED = r"the size of the input with the most elements \(numel\(\) counts channels too\)"

    def forward(self, xs):
        if self.single:
            return xs[0]
        size = max(xs, key=lambda x: x.numel()).shape[-2:]  # counts channels too
        return sum(F.interpolate(c(x), size=size, mode="bilinear", align_corners=True)
                   for c, x in zip(self.convs, xs))


class wrong_any_single_path_passes_through(_Convs):
    EXPECTED = r"'convs.0' is created but never used in forward"

    def forward(self, xs):
        if len(xs) == 1:  # even when its channels are not out_channels
            return xs[0]
        size = _largest(xs)
        return sum(F.interpolate(c(x), size=size, mode="bilinear", align_corners=True)
                   for c, x in zip(self.convs, xs))


class wrong_upsample_size_cached_on_the_first_call(_Convs):
    EXPECTED = r"right on its first call, but a second call on inputs of other sizes .* gives an output of the first call's size"

    def forward(self, xs):
        if self.single:
            return xs[0]
        if not hasattr(self, "up"):
            self.up = nn.Upsample(size=tuple(_largest(xs)), mode="bilinear", align_corners=True)
        return sum(self.up(c(x)) for c, x in zip(self.convs, xs))


class correct_functional_conv_with_the_layers_weights(_Convs):
    def forward(self, xs):
        if self.single:
            return xs[0]
        size = _largest(xs)
        return sum(F.interpolate(F.conv2d(x, c.weight, padding=1), size=size, mode="bilinear",
                                 align_corners=True) for c, x in zip(self.convs, xs))


# -- rnlib's own fusion ----------------------------------------------------------------------
class library_subclass(blocks.MultiResolutionFusion):
    pass


class library_wrapper(nn.Module):
    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.fusion = blocks.MultiResolutionFusion(in_channels, out_channels)

    def forward(self, xs):
        return self.fusion(xs)
