"""Atrous (dilated) convolution that stays fast in bfloat16 on the CPU, for ASPP's large rates
(Chen et al., 2017; the dilated baseline of Lin et al., §1).

On a CPU with AMX, oneDNN's bfloat16 kernels slow down as the rate grows: a 3x3 convolution
2048 -> 256 on a 64x64 map took 5.4x its undilated time at rate 12 and 13x at rate 36 (2
threads, an Intel Xeon; benchmarks/atrous_speed.py), while float32 got faster.
:class:`AtrousConv2d` computes the same sum another way there: one 1x1 convolution gives every
tap's contribution at once (the taps' weights stacked), and each tap's share is added to the
output shifted by its offset. A tap whose offset lies outside the map reads only padding and is
left out, so at rate 36 on a 32x32 map only the centre tap remains. With AVX512-BF16 and no AMX
(an AMD EPYC, Zen 4) oneDNN's kernel keeps 0.5x float32's time at every rate and the taps are
slower (0.60x to 1.19x at rates 12 to 36; benchmarks/epyc/atrous_speed.md), so there it stays
``nn.Conv2d``.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["AtrousConv2d", "atrous_convs", "taps_are_faster"]


def _bf16_on_cpu(x: torch.Tensor) -> bool:
    """Whether a convolution of ``x`` computes in bfloat16 on the CPU (as given, or autocast),
    in eager mode: torch.export and torch.compile keep the plain convolution, whose graph does
    not depend on the map's size (the taps that reach it do)."""
    if x.device.type != "cpu" or torch.compiler.is_compiling():
        return False
    if torch.is_autocast_enabled("cpu"):
        return torch.get_autocast_dtype("cpu") == torch.bfloat16
    return x.dtype == torch.bfloat16


@functools.cache
def taps_are_faster() -> bool:
    """Whether stacked taps beat oneDNN's own bfloat16 kernel for a dilated convolution on this
    CPU: where it has AMX tiles (``torch.cpu.get_capabilities``), measured both ways by
    benchmarks/atrous_speed.py (module doc)."""
    return bool(torch.cpu.get_capabilities().get("amx_bf16", False))


class AtrousConv2d(nn.Conv2d):
    """An ``nn.Conv2d`` (stride 1, one group, "same" zero padding) with the same weights and
    state_dict; in bfloat16 on a CPU with AMX it runs as stacked taps and shifted sums
    (:meth:`taps`, module doc). Elsewhere, and in float32, it is ``nn.Conv2d`` itself."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if _bf16_on_cpu(x) and taps_are_faster():
            return self.taps(x)
        return super().forward(x)

    def taps(self, x: torch.Tensor) -> torch.Tensor:
        """The convolution as one 1x1 convolution over the stacked taps that reach the map, and
        shifted sums of their shares."""
        (kh, kw), (dh, dw) = self.kernel_size, self.dilation
        h, w = x.shape[-2:]
        taps = [(i, j) for i in range(kh) for j in range(kw)  # offsets that reach the map
                if abs(i - kh // 2) * dh < h and abs(j - kw // 2) * dw < w]
        stacked = torch.cat([self.weight[:, :, i, j] for i, j in taps])[:, :, None, None]
        parts = F.conv2d(x, stacked).split(self.out_channels, dim=1)
        centre = taps.index((kh // 2, kw // 2))
        out = parts[centre].clone()
        for (i, j), part in zip(taps, parts):
            if (i, j) == taps[centre]:
                continue
            dy, dx = (i - kh // 2) * dh, (j - kw // 2) * dw  # out[r, s] takes part[r + dy, s + dx]
            out[..., max(-dy, 0):h - max(dy, 0), max(-dx, 0):w - max(dx, 0)] += \
                part[..., max(dy, 0):h - max(-dy, 0), max(dx, 0):w - max(-dx, 0)]
        return out if self.bias is None else out + self.bias.to(out.dtype).view(1, -1, 1, 1)


def atrous_convs(module: nn.Module) -> nn.Module:
    """``module`` with every dilated 'same' convolution (stride 1, one group, odd kernel)
    replaced by an :class:`AtrousConv2d` holding the same parameters (no new random numbers
    drawn, so a seeded model's weights do not change)."""
    for name, child in module.named_children():
        if (type(child) is nn.Conv2d and max(child.dilation) > 1 and child.stride == (1, 1)
                and child.groups == 1 and child.padding_mode == "zeros"
                and all(k % 2 == 1 for k in child.kernel_size)
                and child.padding == tuple(d * (k // 2) for d, k in zip(child.dilation,
                                                                        child.kernel_size))):
            atrous = nn.utils.skip_init(
                AtrousConv2d, child.in_channels, child.out_channels, child.kernel_size,
                padding=child.padding, dilation=child.dilation, bias=child.bias is not None)
            atrous.weight, atrous.bias = child.weight, child.bias
            setattr(module, name, atrous)
        else:
            atrous_convs(child)
    return module
