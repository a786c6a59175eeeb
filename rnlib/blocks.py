"""The building blocks of RefineNet (Lin et al., CVPR 2017, §3.2, Fig. 3).

A RefineNet block takes feature maps of several resolutions and refines them in four steps,
each a module of this file, in the order of the paper's figure:

    adapt  -> Residual Conv Units on every input path            (§3.2 "Residual conv unit")
    fuse   -> Multi-Resolution Fusion to the largest resolution   (§3.2 "Multi-resolution fusion")
    pool   -> Chained Residual Pooling for background context     (§3.2 "Chained residual pooling")
    out    -> more Residual Conv Units                            (§3.2 "Output convolutions")

The defaults follow the authors' released code (2 adaptation RCUs on each backbone path,
4 pooling blocks, 3 output RCUs, fusion resized with ``align_corners=True`` as their
``nn.Upsample``); the paper text describes 2 pooling blocks and 1 output RCU.
Every convolution is a plain ``nn.Conv2d`` so that weights can be copied between equivalent
implementations (the course's checkers rely on that).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.fx.experimental.symbolic_shapes import statically_known_true

__all__ = [
    "RCU",
    "MultiResolutionFusion",
    "ChainedResidualPooling",
    "RefineNetBlock",
    "conv",
    "resize",
    "max_pool5",
]


def conv(in_channels: int, out_channels: int, kernel_size: int = 3,
         bias: bool = False) -> nn.Conv2d:
    """A stride-1 'same' convolution: the only kind inside a RefineNet block."""
    if kernel_size not in (1, 3):
        raise ValueError(f"RefineNet uses 1x1 or 3x3 convolutions, got kernel_size={kernel_size}")
    return nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=bias)


def resize(x: torch.Tensor, size: Sequence[int], align_corners: bool = False) -> torch.Tensor:
    """Bilinear resize of ``x`` to exactly ``size`` (H, W); a no-op when it already fits.

    Resizing to a size rather than by a factor of 2 is what lets every model take inputs
    whose sides are not multiples of 32, and what lets an exported model (``rnlib.export``)
    keep a dynamic height and width. ``align_corners=True`` maps corner pixels onto corner
    pixels (the authors' ``nn.Upsample``); ``False`` maps pixel areas (torchvision's models).
    """
    size = tuple(s if isinstance(s, torch.SymInt) else int(s) for s in size)
    # Under torch.export sizes are symbols: keep them (int() would fix the exported model to
    # the example's size), and skip the resize only where it is a no-op for every size.
    if all(statically_known_true(a == b) for a, b in zip(x.shape[-2:], size)):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=align_corners)


def max_pool5(x: torch.Tensor) -> torch.Tensor:
    """``F.max_pool2d(x, 5, stride=1, padding=2)`` as the maximum of shifted views: 4 maxima
    along H, then 4 along W, on a map padded with -inf, accumulated in place. Exact, in any
    memory format; it keeps no argmax (``max_pool2d`` writes an int64 index per value), so it
    serves inference only: the gradient of a maximum splits between ties where max pooling
    picks one."""
    h, w = x.shape[-2:]
    padded = F.pad(x, (2, 2, 2, 2), value=float("-inf"))  # (N, C, H + 4, W + 4)
    rows = torch.maximum(padded[..., 0:h, :], padded[..., 1:1 + h, :])  # (N, C, H, W + 4)
    for i in range(2, 5):
        torch.maximum(rows, padded[..., i:i + h, :], out=rows)
    out = torch.maximum(rows[..., 0:w], rows[..., 1:1 + w])  # (N, C, H, W)
    for i in range(2, 5):
        torch.maximum(out, rows[..., i:i + w], out=out)
    return out


class RCU(nn.Module):
    """Residual Conv Unit (§3.2, Fig. 3b): ``x + conv(relu(conv(relu(x))))``.

    The first ReLU is out-of-place on purpose: an in-place ReLU on the input would silently
    turn the shortcut into ``relu(x) + F(x)``. The second ReLU and the sum work in place on
    the convolutions' own new outputs, which no backward pass needs: the same values, and no
    extra 1/4-resolution map to allocate. ``shortcut=False`` drops the ``x +`` (§3.3's
    identity mapping), for the ablation that shows what it is for.
    """

    def __init__(self, channels: int, shortcut: bool = True) -> None:
        super().__init__()
        self.shortcut = shortcut
        self.conv1 = conv(channels, channels, 3, bias=True)  # released code: bias on the first
        self.conv2 = conv(channels, channels, 3, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, C, H, W) -> (N, C, H, W)
        out = self.conv1(F.relu(x))  # never relu_(x): x is the shortcut
        out = self.conv2(F.relu_(out))
        return out.add_(x) if self.shortcut else out  # x + out


class MultiResolutionFusion(nn.Module):
    """Multi-Resolution Fusion (§3.2, Fig. 3c).

    Each path gets a convolution to ``out_channels`` (3x3; 1x1 in Light-Weight RefineNet),
    is resized to the largest resolution among the inputs, and the paths are summed.
    A single input whose width already matches passes straight through. ``align_corners``
    is the resize's convention (True in the authors' released code); ``norm=True`` puts a
    BatchNorm on each path's term (not in the paper; see :class:`RefineNetBlock`).
    """

    def __init__(self, in_channels: Sequence[int], out_channels: int, kernel_size: int = 3,
                 align_corners: bool = True, norm: bool = False) -> None:
        super().__init__()
        in_channels = list(in_channels)
        if not in_channels:
            raise ValueError("MultiResolutionFusion needs at least one input path")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.align_corners = align_corners
        if len(in_channels) == 1 and in_channels[0] == out_channels:
            self.convs = None
        else:
            self.convs = nn.ModuleList(conv(c, out_channels, kernel_size) for c in in_channels)
        self.norms = nn.ModuleList(nn.BatchNorm2d(out_channels) for _ in in_channels) if norm \
            else None

    def term(self, i: int, x: torch.Tensor) -> torch.Tensor:
        """Path ``i``'s term before resizing: its convolution, then its BatchNorm if any."""
        if self.convs is not None:
            x = self.convs[i](x)
        return x if self.norms is None else self.norms[i](x)

    def forward(self, xs: Sequence[torch.Tensor]) -> torch.Tensor:
        _check_paths(self, xs, self.in_channels)
        if self.convs is None and self.norms is None:
            return xs[0]
        size = max((x.shape[-2:] for x in xs), key=lambda hw: hw[0] * hw[1])
        out = resize(self.term(0, xs[0]), size, self.align_corners)  # (N, out, H_max, W_max)
        for i, x in enumerate(xs[1:], start=1):
            out = out.add_(resize(self.term(i, x), size, self.align_corners))  # a new map
        return out


class ChainedResidualPooling(nn.Module):
    """Chained Residual Pooling (§3.2, Fig. 3d).

    ``relu(x)``, then a CHAIN of blocks, each a 5x5 stride-1 max pooling and a convolution
    fed with the previous block's output; the result is ``relu(x)`` plus every block's output.
    ``order="conv-pool"`` is the improved variant that convolves before pooling;
    ``num_blocks=0`` leaves only the ReLU (the "without CRP" ablation). ``shortcut=False``
    returns the last block's output alone (no identity path, §3.3): a plain chain.
    Receptive field, counted in positions of the map it pools (the block's resolution): each
    block widens it by 5 - 1 for its pooling and kernel_size - 1 for its convolution, so
    4 blocks with 3x3 convolutions (the default) reach 25x25 positions, 1 + 4 x (4 + 2); with
    1x1 convolutions (Light-Weight RefineNet), 17x17. In input pixels that is 25 times the
    block's stride: 100 at 1/4, 200 at 1/8, 400 at 1/16, 800 at 1/32 (the image area those
    positions stand for; the backbone's own receptive field comes on top).
    Under ``torch.inference_mode`` (evaluation, benchmarks) the 5x5 maximum is taken over
    shifted views of the padded map, which computes no argmax indices: the same values at about
    a third of the cost.
    """

    ORDERS = ("pool-conv", "conv-pool")

    def __init__(
        self, channels: int, num_blocks: int = 4, kernel_size: int = 3, order: str = "pool-conv",
        shortcut: bool = True,
    ) -> None:
        super().__init__()
        if order not in self.ORDERS:
            raise ValueError(f"order must be one of {self.ORDERS}, got {order!r}")
        if num_blocks < 0:
            raise ValueError(f"ChainedResidualPooling needs num_blocks >= 0, got {num_blocks}")
        self.order, self.shortcut = order, shortcut
        self.convs = nn.ModuleList(conv(channels, channels, kernel_size) for _ in range(num_blocks))

    @staticmethod
    def pool(x: torch.Tensor) -> torch.Tensor:
        """5x5 max pooling, stride 1, padding 2: ``max_pool2d`` (whose backward sends each
        gradient to one maximum, as the authors' code does), or under ``torch.inference_mode``,
        where no gradient can be asked for, :func:`max_pool5` (the same values, no indices)."""
        if torch.is_inference_mode_enabled():
            return max_pool5(x)
        return F.max_pool2d(x, 5, stride=1, padding=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, C, H, W) -> (N, C, H, W)
        x = F.relu(x)
        out, path = x, x
        for i, conv_ in enumerate(self.convs):
            path = conv_(self.pool(path)) if self.order == "pool-conv" else self.pool(conv_(path))
            out = out + path if i == 0 else out.add_(path)  # in place once out is a new map
        return out if self.shortcut else path


class RefineNetBlock(nn.Module):
    """One RefineNet block (§3.2, Fig. 3a): adapt -> fuse -> pool -> out.

    ``in_channels`` lists the width of each input path, finest or coarsest in any order;
    ``rcus_per_path`` gives the number of adaptation RCUs on each path (one number for all,
    or one per path; the released code puts 2 on backbone paths and 0 on the path coming from
    the previous block, whose output RCUs already refined it). With ``kernel_size=1``,
    ``rcus_per_path=0`` and ``out_rcus=0`` this is the Light-Weight RefineNet block
    (Nekrasov et al., BMVC 2018). ``align_corners`` goes to the fusion's resize;
    ``shortcuts=False`` drops the identity path of every RCU and of the CRP (§3.3).
    ``norm="fusion"`` puts a BatchNorm on each path's term of the fusion, so that every path
    enters the sum at one scale and CRP's first ReLU sees a normalised map; neither the paper
    nor the released code has it (``"none"``, the default). benchmarks/coarse_paths.md measures
    what it changes.
    """

    NORMS = ("none", "fusion")

    def __init__(
        self,
        in_channels: Sequence[int],
        out_channels: int,
        *,
        rcus_per_path: int | Sequence[int] = 2,
        crp_blocks: int = 4,
        out_rcus: int = 3,
        kernel_size: int = 3,
        crp_order: str = "pool-conv",
        align_corners: bool = True,
        norm: str = "none",
        shortcuts: bool = True,
    ) -> None:
        super().__init__()
        if norm not in self.NORMS:
            raise ValueError(f"norm must be one of {self.NORMS}, got {norm!r}")
        in_channels = list(in_channels)
        if isinstance(rcus_per_path, int):
            rcus_per_path = [rcus_per_path] * len(in_channels)
        if len(rcus_per_path) != len(in_channels):
            raise ValueError(
                f"rcus_per_path has {len(rcus_per_path)} entries for {len(in_channels)} paths"
            )
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.adapt = nn.ModuleList(
            nn.Sequential(*(RCU(c, shortcuts) for _ in range(n)))
            for c, n in zip(in_channels, rcus_per_path)
        )
        self.fuse = MultiResolutionFusion(in_channels, out_channels, kernel_size, align_corners,
                                          norm=norm == "fusion")
        self.pool = ChainedResidualPooling(out_channels, crp_blocks, kernel_size, crp_order,
                                           shortcuts)
        self.out = nn.Sequential(*(RCU(out_channels, shortcuts) for _ in range(out_rcus)))

    def forward(self, xs: Sequence[torch.Tensor]) -> torch.Tensor:
        _check_paths(self, xs, self.in_channels)
        xs = [adapt(x) for adapt, x in zip(self.adapt, xs)]
        x = self.fuse(xs)  # (N, out, H_max, W_max)
        x = self.pool(x)
        return self.out(x)


def _check_paths(module: nn.Module, xs: Sequence[torch.Tensor], in_channels: list[int]) -> None:
    """Raise a clear error when the list of input paths does not match the constructor."""
    name = type(module).__name__
    if isinstance(xs, torch.Tensor):
        raise TypeError(f"{name} takes a list of tensors (one per path), got a single tensor; "
                        f"wrap it: {name.lower()}([x])")
    if len(xs) != len(in_channels):
        raise ValueError(f"{name} was built for {len(in_channels)} paths, got {len(xs)} tensors")
    for i, (x, c) in enumerate(zip(xs, in_channels)):
        if x.ndim != 4 or x.shape[1] != c:
            raise ValueError(
                f"{name} path {i} expects (N, {c}, H, W), got shape {tuple(x.shape)}"
            )
