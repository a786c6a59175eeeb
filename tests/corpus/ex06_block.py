"""Exercise 6.1: RefineNetBlock(in_channels, out_channels, rcus_per_path=2, crp_blocks=4,
out_rcus=3): adapt -> fuse -> pool -> out. Notebook 06 imports rnlib's RCU, fusion and pooling."""

import itertools

import torch.nn.functional as F
from torch import nn

from rnlib import blocks
from rnlib.blocks import RCU, ChainedResidualPooling, MultiResolutionFusion

EXERCISE = "6.1"


def _counts(rcus_per_path, n):
    return [rcus_per_path] * n if isinstance(rcus_per_path, int) else list(rcus_per_path)


class _Block(nn.Module):
    """The exercise's solution, for the mistakes that change only forward."""

    def __init__(self, in_channels, out_channels, rcus_per_path=2, crp_blocks=4, out_rcus=3):
        super().__init__()
        counts = _counts(rcus_per_path, len(in_channels))
        self.adapt = nn.ModuleList(nn.Sequential(*[RCU(c) for _ in range(n)])
                                   for c, n in zip(in_channels, counts))
        self.fuse = MultiResolutionFusion(in_channels, out_channels)
        self.pool = ChainedResidualPooling(out_channels, crp_blocks)
        self.out = nn.Sequential(*[RCU(out_channels) for _ in range(out_rcus)])


# -- correct ---------------------------------------------------------------------------------
class correct_as_in_the_paper(_Block):
    def forward(self, xs):
        xs = [adapt(x) for adapt, x in zip(self.adapt, xs)]
        return self.out(self.pool(self.fuse(xs)))


class correct_overwrites_its_input_list(_Block):
    def forward(self, xs):
        for i in range(len(xs)):
            xs[i] = self.adapt[i](xs[i])
        x = self.fuse(xs)
        x = self.pool(x)
        return self.out(x)


class correct_created_backwards_other_names(nn.Module):
    def __init__(self, in_channels, out_channels, rcus_per_path=2, crp_blocks=4, out_rcus=3):
        super().__init__()
        self.head = nn.Sequential(*(RCU(out_channels) for _ in range(out_rcus)))
        self.context = ChainedResidualPooling(out_channels, num_blocks=crp_blocks)
        self.fusion = MultiResolutionFusion(in_channels, out_channels)
        counts = _counts(rcus_per_path, len(in_channels))
        self.paths = nn.ModuleList()
        for c, n in zip(in_channels, counts):
            self.paths.append(nn.Sequential(*[RCU(c) for _ in range(n)]))

    def forward(self, xs):
        adapted = []
        for path, x in zip(self.paths, xs):
            adapted.append(path(x))
        return self.head(self.context(self.fusion(adapted)))


class correct_one_sequential_tail_and_module_dict(nn.Module):
    def __init__(self, in_channels, out_channels, rcus_per_path=2, crp_blocks=4, out_rcus=3):
        super().__init__()
        counts = _counts(rcus_per_path, len(in_channels))
        self.adapt = nn.ModuleDict({f"path{i}": nn.Sequential(*[RCU(c) for _ in range(n)])
                                    for i, (c, n) in enumerate(zip(in_channels, counts))})
        self.fuse = MultiResolutionFusion(in_channels, out_channels)
        self.tail = nn.Sequential(ChainedResidualPooling(out_channels, crp_blocks),
                                  *[RCU(out_channels) for _ in range(out_rcus)])

    def forward(self, xs):
        return self.tail(self.fuse([self.adapt[f"path{i}"](x) for i, x in enumerate(xs)]))


class _OwnRCU(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.a = nn.Conv2d(c, c, 3, padding="same")
        self.b = nn.Conv2d(c, c, 3, padding="same", bias=False)

    def forward(self, x):
        return x + self.b(F.relu(self.a(F.relu(x))))


class _OwnFusion(nn.Module):
    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.single = len(in_channels) == 1 and in_channels[0] == out_channels
        self.convs = nn.ModuleList([] if self.single else [
            nn.Conv2d(c, out_channels, 3, padding=1, bias=False) for c in in_channels])

    def forward(self, xs):
        if self.single:
            return xs[0]
        size = max((x.shape[-2:] for x in xs), key=lambda hw: hw[0] * hw[1])
        return sum(F.interpolate(c(x), size=size, mode="bilinear", align_corners=False)
                   for c, x in zip(self.convs, xs))


class _OwnCRP(nn.Module):
    def __init__(self, c, n):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(c, c, 3, padding=1, bias=False) for _ in range(n))

    def forward(self, x):
        x = F.relu(x)
        out = path = x
        for conv in self.convs:
            path = conv(F.max_pool2d(path, 5, 1, 2))
            out = out + path
        return out


class correct_own_parts_align_corners_false(nn.Module):
    NOTE = r"align_corners=False"

    def __init__(self, in_channels, out_channels, rcus_per_path=2, crp_blocks=4, out_rcus=3):
        super().__init__()
        counts = _counts(rcus_per_path, len(in_channels))
        self.adapt = nn.ModuleList(nn.Sequential(*[_OwnRCU(c) for _ in range(n)])
                                   for c, n in zip(in_channels, counts))
        self.fuse = _OwnFusion(in_channels, out_channels)
        self.pool = _OwnCRP(out_channels, crp_blocks)
        self.out = nn.Sequential(*[_OwnRCU(out_channels) for _ in range(out_rcus)])

    def forward(self, xs):
        return self.out(self.pool(self.fuse([a(x) for a, x in zip(self.adapt, xs)])))


class correct_repeat_counts_and_reversed_paths(nn.Module):
    def __init__(self, in_channels, out_channels, rcus_per_path=2, crp_blocks=4, out_rcus=3):
        super().__init__()
        counts = (itertools.repeat(rcus_per_path) if isinstance(rcus_per_path, int)
                  else rcus_per_path)
        self.adapt = nn.ModuleList([nn.Sequential(*[RCU(c) for _ in range(n)])
                                    for c, n in zip(in_channels, counts)])
        self.fuse = MultiResolutionFusion(in_channels, out_channels)
        self.pool = ChainedResidualPooling(out_channels, crp_blocks)
        self.out = nn.Sequential(*[RCU(out_channels) for _ in range(out_rcus)])

    def forward(self, xs):
        adapted = [None] * len(xs)
        for i in reversed(range(len(xs))):  # coarse paths first: any order works
            adapted[i] = self.adapt[i](xs[i])
        return self.out(self.pool(self.fuse(adapted)))


# -- wrong -----------------------------------------------------------------------------------
class wrong_hard_coded_pooling_and_output(nn.Module):
    EXPECTED = r"it has \d+ nn.Conv2d layers \(adapt: \d+, fuse: \d+, pool: 4, out: 6\); rnlib's has \d+\n.*\nHint: .*crp_blocks pooling convolutions, out_rcus output RCUs: use the arguments"

    def __init__(self, in_channels, out_channels, rcus_per_path=2, crp_blocks=4, out_rcus=3):
        super().__init__()
        counts = _counts(rcus_per_path, len(in_channels))
        self.adapt = nn.ModuleList(nn.Sequential(*[RCU(c) for _ in range(n)])
                                   for c, n in zip(in_channels, counts))
        self.fuse = MultiResolutionFusion(in_channels, out_channels)
        self.pool = ChainedResidualPooling(out_channels, 4)
        self.out = nn.Sequential(*[RCU(out_channels) for _ in range(3)])

    def forward(self, xs):
        return self.out(self.pool(self.fuse([a(x) for a, x in zip(self.adapt, xs)])))


class wrong_ignores_rcus_per_path(nn.Module):
    EXPECTED = r"it has \d+ nn.Conv2d layers \(adapt: 8, fuse: 2, pool: 4, out: 6\); rnlib's has 16"

    def __init__(self, in_channels, out_channels, rcus_per_path=2, crp_blocks=4, out_rcus=3):
        super().__init__()
        self.adapt = nn.ModuleList(nn.Sequential(RCU(c), RCU(c)) for c in in_channels)
        self.fuse = MultiResolutionFusion(in_channels, out_channels)
        self.pool = ChainedResidualPooling(out_channels, crp_blocks)
        self.out = nn.Sequential(*[RCU(out_channels) for _ in range(out_rcus)])

    def forward(self, xs):
        return self.out(self.pool(self.fuse([a(x) for a, x in zip(self.adapt, xs)])))


class wrong_out_before_pool(_Block):
    EXPECTED = r"output RCUs come before the pooling"

    def forward(self, xs):
        return self.pool(self.out(self.fuse([a(x) for a, x in zip(self.adapt, xs)])))


class wrong_adapt_never_applied(_Block):
    EXPECTED = r"'adapt.0.0.conv1', .* are created but never used in forward"

    def forward(self, xs):
        return self.out(self.pool(self.fuse(xs)))


class wrong_no_pooling(_Block):
    EXPECTED = r"'pool.convs.0', .*never used in forward"

    def forward(self, xs):
        return self.out(self.fuse([a(x) for a, x in zip(self.adapt, xs)]))


class wrong_plain_list_of_paths(nn.Module):
    EXPECTED = r"plain Python list"

    def __init__(self, in_channels, out_channels, rcus_per_path=2, crp_blocks=4, out_rcus=3):
        super().__init__()
        counts = _counts(rcus_per_path, len(in_channels))
        self.adapt = [nn.Sequential(*[RCU(c) for _ in range(n)])
                      for c, n in zip(in_channels, counts)]
        self.fuse = MultiResolutionFusion(in_channels, out_channels)
        self.pool = ChainedResidualPooling(out_channels, crp_blocks)
        self.out = nn.Sequential(*[RCU(out_channels) for _ in range(out_rcus)])

    def forward(self, xs):
        return self.out(self.pool(self.fuse([a(x) for a, x in zip(self.adapt, xs)])))


class wrong_adapt_at_out_channels(nn.Module):
    EXPECTED = r"convolution 'adapt.\d.0.conv1' \(made for \d+ channels\) is applied to \d+ channels.*\n.*\nHint: path i's RCUs have in_channels\[i\] channels"

    def __init__(self, in_channels, out_channels, rcus_per_path=2, crp_blocks=4, out_rcus=3):
        super().__init__()
        counts = _counts(rcus_per_path, len(in_channels))
        self.adapt = nn.ModuleList(nn.Sequential(*[RCU(out_channels) for _ in range(n)])
                                   for n in counts)
        self.fuse = MultiResolutionFusion(in_channels, out_channels)
        self.pool = ChainedResidualPooling(out_channels, crp_blocks)
        self.out = nn.Sequential(*[RCU(out_channels) for _ in range(out_rcus)])

    def forward(self, xs):
        return self.out(self.pool(self.fuse([a(x) for a, x in zip(self.adapt, xs)])))


class wrong_fusion_to_the_first_width(nn.Module):
    EXPECTED = r"is applied to \d+ channels at \d+x\d+; rnlib's convolutions see"

    def __init__(self, in_channels, out_channels, rcus_per_path=2, crp_blocks=4, out_rcus=3):
        super().__init__()
        counts = _counts(rcus_per_path, len(in_channels))
        width = in_channels[0]
        self.adapt = nn.ModuleList(nn.Sequential(*[RCU(c) for _ in range(n)])
                                   for c, n in zip(in_channels, counts))
        self.fuse = MultiResolutionFusion(in_channels, width)
        self.pool = ChainedResidualPooling(width, crp_blocks)
        self.out = nn.Sequential(*[RCU(width) for _ in range(out_rcus)])

    def forward(self, xs):
        return self.out(self.pool(self.fuse([a(x) for a, x in zip(self.adapt, xs)])))


class wrong_shares_one_rcu_per_path(nn.Module):
    EXPECTED = r"convolution 'adapt.0.conv1' is applied 2 times"

    def __init__(self, in_channels, out_channels, rcus_per_path=2, crp_blocks=4, out_rcus=3):
        super().__init__()
        self.counts = _counts(rcus_per_path, len(in_channels))
        self.adapt = nn.ModuleList(RCU(c) for c in in_channels)  # one RCU applied n times
        self.fuse = MultiResolutionFusion(in_channels, out_channels)
        self.pool = ChainedResidualPooling(out_channels, crp_blocks)
        self.out = nn.Sequential(*[RCU(out_channels) for _ in range(out_rcus)])

    def forward(self, xs):
        paths = []
        for rcu, x, n in zip(self.adapt, xs, self.counts):
            for _ in range(n):
                x = rcu(x)
            paths.append(x)
        return self.out(self.pool(self.fuse(paths)))


class wrong_fusion_by_factor_two(_Block):
    EXPECTED = r"resizes by a fixed factor"

    def forward(self, xs):
        xs = [a(x) for a, x in zip(self.adapt, xs)]
        convs = self.fuse.convs
        if convs is None:
            fused = xs[0]
        else:
            fused = convs[0](xs[0])
            for conv, x in zip(convs[1:], xs[1:]):
                fused = fused + F.interpolate(conv(x), scale_factor=2, mode="bilinear")
        return self.out(self.pool(fused))


class wrong_extra_residual(_Block):
    EXPECTED = r"its output differs from rnlib's with the same weights.*\n.*\nHint: adapt each path"

    def forward(self, xs):
        fused = self.fuse([a(x) for a, x in zip(self.adapt, xs)])
        return fused + self.out(self.pool(fused))


class wrong_detaches_the_fused_map(_Block):
    EXPECTED = r"no gradient reaches input path 0|gradient reaching input path 0 differs|parameter 'adapt.0.0.conv1.weight' gets no gradient"

    def forward(self, xs):
        fused = self.fuse([a(x) for a, x in zip(self.adapt, xs)]).detach()
        return self.out(self.pool(fused))


# -- rnlib's own block -----------------------------------------------------------------------
class library_subclass(blocks.RefineNetBlock):
    pass


class library_wrapper(nn.Module):
    def __init__(self, in_channels, out_channels, rcus_per_path=2, crp_blocks=4, out_rcus=3):
        super().__init__()
        self.block = blocks.RefineNetBlock(in_channels, out_channels, rcus_per_path=rcus_per_path,
                                           crp_blocks=crp_blocks, out_rcus=out_rcus)

    def forward(self, xs):
        return self.block(xs)
