"""The block exercises: 3.1 the Residual Conv Unit, 4.1 Multi-Resolution Fusion, 5.1 Chained
Residual Pooling and 6.1 the RefineNet block (§3.2), each a :class:`BlockCheck`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .. import blocks
from . import causes
from .protocol import BlockCheck, Mistakes, Setting, pyramid
from .recorder import Call
from .report import Explanation
from .state import checker

# A block exercise may not be, subclass or run rnlib's blocks; 6.1 builds on the first three.
_BLOCKS = (blocks.RCU, blocks.MultiResolutionFusion, blocks.ChainedResidualPooling,
           blocks.RefineNetBlock)


# -- 03 Residual Conv Unit --------------------------------------------------------------------
class _RCUCheck(BlockCheck):
    component = "RCU"
    signature = "RCU(channels)"
    library = _BLOCKS
    hint_shape = "3x3 convolutions with padding 1 keep the size; keep the channel count"
    hint_output = "order: ReLU, conv1, ReLU, conv2, then add the input x (paper Fig. 3b)"
    hint_layout = "both convolutions map channels to channels at the input's size"
    hint_width = "both convolutions keep the width: nn.Conv2d(channels, channels, 3, padding=1)"
    hint_channels = hint_width
    hint_reuse = "create two convolutions, conv1 and conv2, each with weights of its own"
    hint_inplace = ("an in-place ReLU on x (nn.ReLU(inplace=True), F.relu_, x.relu_()) turns "
                    "the shortcut into relu(x) + F(x): use F.relu(x)")

    def settings(self) -> list[Setting]:
        out = []
        for n in (2, 1):
            c, (h, w) = self.rng.randint(3, 8), pyramid(self.rng, 1)[0]
            out.append(Setting((c,), {}, [(n, c, h, w)], as_list=False))
        return out

    def reference(self, setting: Setting, align_corners: bool) -> nn.Module:
        return blocks.RCU(*setting.args)

    def count_hint(self, setting: Setting) -> str:
        return "an RCU has two 3x3 convolutions (paper Fig. 3b)"

    def mistakes(self, ref: nn.Module, xs: list[torch.Tensor]) -> Mistakes:
        x, c1, c2 = xs[0], ref.conv1, ref.conv2
        branch = c2(F.relu(c1(F.relu(x))))
        yield (branch, "the residual connection is missing: it returns only the convolutions",
               "return x + out (paper Fig. 3b)")
        yield (F.relu(x) + branch, "the shortcut carries relu(x) instead of x",
               "keep the original x for the sum; give the ReLU's result a new name")
        yield (x + c2(F.relu(c1(x))), "the first ReLU is missing",
               "the unit begins with a ReLU (pre-activation)")
        yield (x + c2(c1(F.relu(x))), "the ReLU between the two convolutions is missing",
               "x + conv2(relu(conv1(relu(x))))")
        yield (x + F.relu(c2(F.relu(c1(x)))), "the ReLUs come after the convolutions "
               "(post-activation)", "ReLU before each convolution: x + conv2(relu(conv1(relu(x))))")


@checker
def check_rcu(cls: type[nn.Module], *, seed: int | None = None,
              allow_library: bool = False) -> None:
    """Exercise 3.1: ``cls(channels)``, forward(x) -> x + conv2(relu(conv1(relu(x)))) (§3.2)."""
    _RCUCheck(seed, allow_library).run(cls)


# -- 04 Multi-Resolution Fusion ---------------------------------------------------------------
class _FusionCheck(BlockCheck):
    component = "MultiResolutionFusion"
    signature = "MultiResolutionFusion(in_channels, out_channels)"
    library = _BLOCKS
    as_list = True
    conventions = (True, False)
    hint_shape = ("each path's convolution maps it to out_channels; then resize to the largest "
                  "input's size")
    hint_output = ("convolve each path first, then resize it (bilinear) to the largest input's "
                   "size, then sum")
    hint_layout = ("convolve each path at its own size first (from in_channels[i] to "
                   "out_channels), then resize the result")
    hint_channels = ("pair each path with its own convolution: convs[i] maps in_channels[i] to "
                     "out_channels and is applied to xs[i]")
    hint_width = ("every path's convolution maps to out_channels, the constructor's argument "
                  "(in RefineNet it happens to be the smallest width; do not compute it)")
    hint_reuse = "create one convolution per input path"

    def settings(self) -> list[Setting]:
        r = self.rng
        widths = r.sample(range(4, 17), 4)
        out = widths.pop()
        sizes = pyramid(r, 3)
        mid, big = r.randint(2, 3), r.randint(17, 20)  # the coarsest has the most elements
        passing = r.randint(4, 12)
        single = r.choice([c for c in range(4, 13) if c != out])

        def setting(channels: list[int], width: int, hws: list[tuple[int, int]],
                    n: int = 2) -> Setting:
            return Setting((channels, width), {}, [(n, c, *hw) for c, hw in zip(channels, hws)],
                            as_list=True)

        return [setting(widths, out, sizes),                               # finest first
                setting([mid, big, 1], 4, [sizes[1], sizes[2], sizes[0]], n=1),  # largest last
                setting([passing], passing, sizes[1:2]),                   # passes through
                setting([single], out, sizes[:1])]  # one path whose channels change: one conv

    def reference(self, setting: Setting, align_corners: bool) -> nn.Module:
        return blocks.MultiResolutionFusion(*setting.args, align_corners=align_corners)

    def count_hint(self, setting: Setting) -> str:
        channels, out = setting.args
        if len(channels) == 1 and channels[0] == out:
            return ("with one input that already has out_channels channels, fusion passes it "
                    "through: no convolution")
        return f"one 3x3 convolution per input path: {len(channels)} here"

    def explain(self, calls: list[Call], setting: Setting, complete: bool) -> Explanation | None:
        if len(setting.shapes) == 1:
            return None
        return causes.resize(calls, setting.shapes, complete)

    def shape_mistake(self, out: torch.Tensor, expected: torch.Tensor,
                      setting: Setting) -> Explanation | None:
        n = len(setting.shapes)
        if n > 1 and out.shape[1] == n * expected.shape[1]:
            return ("it concatenates the paths; fusion sums them", "out = out + resized path")
        return None

    def mistakes(self, ref: nn.Module, xs: list[torch.Tensor]) -> Mistakes:
        fused = ref(xs)
        yield (fused / len(xs), "it averages the paths; fusion sums them",
               "return the sum of the resized paths, not their mean")
        yield (F.relu(fused), "it applies a ReLU after the sum; fusion ends with the sum",
               "return the sum itself")


@checker
def check_fusion(cls: type[nn.Module], *, seed: int | None = None,
                 allow_library: bool = False) -> None:
    """Exercise 4.1: ``cls(in_channels, out_channels)``, forward(list of maps) -> one map (§3.2).
    Bilinear resizing with either align_corners is accepted (the authors use True)."""
    _FusionCheck(seed, allow_library).run(cls)


# -- 05 Chained Residual Pooling --------------------------------------------------------------
class _CRPCheck(BlockCheck):
    component = "ChainedResidualPooling"
    signature = "ChainedResidualPooling(channels, num_blocks=4)"
    library = _BLOCKS
    hint_shape = ("5x5 max pooling with stride 1 and padding 2 keeps the size, and so does each "
                  "convolution")
    hint_output = ("x = relu(x); out = path = x; for each block: path = conv(maxpool5x5(path)); "
                   "out = out + path")
    hint_layout = "every convolution maps channels to channels at the input's size"
    hint_width = "nn.Conv2d(channels, channels, 3, padding=1, bias=False)"
    hint_channels = hint_width
    hint_reuse = "each pooling block has a convolution of its own: num_blocks of them"

    def settings(self) -> list[Setting]:
        r = self.rng
        out = []
        for args in [(r.randint(3, 6), r.randint(2, 3)), (r.randint(3, 6),), (r.randint(3, 6), 1)]:
            (h, w), n = pyramid(r, 1)[0], r.randint(1, 2)
            out.append(Setting(args, {}, [(n, args[0], h, w)], as_list=False))
        return out

    def reference(self, setting: Setting, align_corners: bool) -> nn.Module:
        return blocks.ChainedResidualPooling(*setting.args)

    def count_hint(self, setting: Setting) -> str:
        blocks_ = setting.args[1] if len(setting.args) > 1 else 4
        return (f"one convolution per pooling block: num_blocks={blocks_} of them here "
                "(use the argument; its default is 4)")

    def explain(self, calls: list[Call], setting: Setting, complete: bool) -> Explanation | None:
        return causes.pooling(calls, complete)

    def mistakes(self, ref: nn.Module, xs: list[torch.Tensor]) -> Mistakes:
        x, pool, convs = F.relu(xs[0]), blocks.ChainedResidualPooling.pool, list(ref.convs)
        path, paths = x, []
        for conv in convs:
            path = conv(pool(path))
            paths.append(path)
        yield (x + sum(conv(pool(x)) for conv in convs), "the pooling blocks run in parallel "
               "on the input; CRP is a CHAIN", "feed each block the previous block's output: "
                                               "path = conv(pool(path))")
        yield (x + paths[-1], "only the last block's output is added",
               "add every block's output to the running sum (out = out + path)")
        yield (paths[-1], "only the last block's output is returned",
               "out = relu(x) + the output of every block")
        yield (sum(paths), "the input itself is missing from the sum",
               "start the sum with relu(x)")
        raw, path = xs[0], xs[0]
        for conv in convs:
            path = conv(pool(path))
            raw = raw + path
        yield raw, "the leading ReLU is missing", "CRP starts with x = relu(x)"
        path, improved = x, x
        for conv in convs:
            path = pool(conv(path))
            improved = improved + path
        yield (improved, "each block convolves before it pools (the 'improved' order of the "
               "released code)", "the exercise's order: path = conv(maxpool(path))")


@checker
def check_crp(cls: type[nn.Module], *, seed: int | None = None,
              allow_library: bool = False) -> None:
    """Exercise 5.1: ``cls(channels, num_blocks=4)``, forward(x) -> same shape (§3.2)."""
    _CRPCheck(seed, allow_library).run(cls)


# -- 06 the RefineNet block and cascade -------------------------------------------------------
class _OutBeforePool(blocks.RefineNetBlock):
    def forward(self, xs: Sequence[torch.Tensor]) -> torch.Tensor:
        return self.pool(self.out(self.fuse([adapt(x) for adapt, x in zip(self.adapt, xs)])))


class _RefineNetBlockCheck(BlockCheck):
    component = "RefineNetBlock"
    signature = ("RefineNetBlock(in_channels, out_channels, rcus_per_path=2, crp_blocks=4, "
                 "out_rcus=3)")
    library = (blocks.RefineNetBlock,)
    as_list = True
    conventions = (True, False)
    breakdown = True
    hint_shape = "fusion brings every path to out_channels at the largest input's resolution"
    hint_output = ("adapt each path with its RCUs, fuse, pool, then the output RCUs, in that "
                   "order (paper Fig. 3a)")
    hint_layout = ("adapt each path with RCUs of its own width; fuse to out_channels at the "
                   "largest size; pool and the output RCUs work at out_channels")
    hint_channels = ("path i's RCUs have in_channels[i] channels; the pooling and the output "
                     "RCUs have out_channels")
    hint_width = hint_channels
    hint_reuse = "each path needs its own RCUs, and each step its own layers"

    def settings(self) -> list[Setting]:
        r = self.rng
        w = r.sample(range(4, 13), 4)
        sizes = pyramid(r, 3)
        top = r.randint(4, 10)

        def setting(channels: list[int], out: int, hws: list[tuple[int, int]],
                    **options: Any) -> Setting:
            return Setting((channels, out), options,
                            [(1, c, *hw) for c, hw in zip(channels, hws)], as_list=True)

        return [setting([w[0], 2 * w[0]], w[0], sizes[:2], rcus_per_path=[2, 0]),  # the cascade's
                setting(w[:3], w[3], sizes[::-1], rcus_per_path=1, crp_blocks=2, out_rcus=1),
                setting([top], top, sizes[1:2], rcus_per_path=2, crp_blocks=1, out_rcus=2),
                setting(w[1:3], w[0], sizes[:2])]                                  # the defaults

    def reference(self, setting: Setting, align_corners: bool) -> nn.Module:
        return blocks.RefineNetBlock(*setting.args, **setting.kwargs, align_corners=align_corners)

    def count_hint(self, setting: Setting) -> str:
        return ("rcus_per_path[i] RCUs (2 convolutions each) on path i, one fusion convolution "
                "per path (none for a single path of out_channels channels), crp_blocks pooling "
                "convolutions, out_rcus output RCUs: use the arguments, the checker varies them")

    def explain(self, calls: list[Call], setting: Setting, complete: bool) -> Explanation | None:
        several = len(setting.shapes) > 1
        return ((several and causes.resize(calls, setting.shapes, complete))
                or causes.pooling(calls, complete))

    mistaken = ((_OutBeforePool, "the output RCUs come before the pooling",
                 "adapt, fuse, pool, out (paper Fig. 3a)"),)


@checker
def check_refinenet_block(cls: type[nn.Module], *, seed: int | None = None,
                          allow_library: bool = False) -> None:
    """Exercise 6.1: ``cls(in_channels, out_channels, rcus_per_path=2, crp_blocks=4,
    out_rcus=3)``: adapt -> fuse -> pool -> out (§3.2, Fig. 3a)."""
    _RefineNetBlockCheck(seed, allow_library).run(cls)

