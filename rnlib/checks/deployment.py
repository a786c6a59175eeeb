"""Exercise 10.1: folding an eval-mode batch norm into the convolution before it."""

from __future__ import annotations

import copy
import random
from collections.abc import Callable
from functools import partial
from typing import Any

import torch
from torch import nn

from .report import Explanation, fail, passed
from .scalar import Mistake, diagnose
from .state import checker, randomness
from .student import Watch, call

_RULE = ("scale = bn.weight / sqrt(running_var + eps); weight = conv.weight * "
         "scale[:, None, None, None]; bias = bn.bias + (conv.bias - running_mean) * scale")
_SETTINGS = ("stride", "padding", "dilation", "groups", "padding_mode")


def _settings(rng: random.Random) -> list[tuple[int, int, bool, dict[str, Any]]]:
    """(c_in, c_out, bias, options) of the convolutions: plain, strided and dilated, grouped
    and reflect-padded, depthwise."""
    groups, depth = rng.randint(2, 3), rng.randint(3, 6)
    return [(4, 6, False, {"padding": 1}),
            (rng.randint(3, 6), rng.randint(2, 7), True,
             {"stride": 2, "padding": 2, "dilation": 2}),
            (2 * groups, 3 * groups, True, {"padding": 1, "groups": groups,
                                            "padding_mode": "reflect"}),
            (depth, depth, False, {"padding": 1, "groups": depth})]


def _conv_bn(gen: torch.Generator, c_in: int, c_out: int, bias: bool,
             **options: Any) -> tuple[nn.Conv2d, nn.BatchNorm2d]:
    """Weights in [-1, 1]; gammas of both signs (the first negative); a large eps, so that a
    fold without it is caught. Both in eval mode (torch's fuse_conv_bn_eval insists)."""
    conv, bn = nn.Conv2d(c_in, c_out, 3, bias=bias, **options), nn.BatchNorm2d(c_out)
    with torch.no_grad():
        for p in [*conv.parameters(), bn.weight, bn.bias, bn.running_mean]:
            p.copy_(torch.rand(p.shape, generator=gen) * 2 - 1)
        signs = torch.randint(0, 2, (c_out,), generator=gen) * 2 - 1
        signs[0] = -1
        bn.weight.copy_((bn.weight.abs() + 0.5) * signs)
        bn.running_var.copy_(torch.rand(c_out, generator=gen) + 0.5)
    bn.eps = 0.1
    return conv.eval(), bn.eval()


def _tensors(*modules: nn.Module) -> list[torch.Tensor]:
    return [t for m in modules for t in m.state_dict().values()]


def _folded(conv: nn.Conv2d, x: torch.Tensor, scale: torch.Tensor,
            shift: torch.Tensor) -> torch.Tensor:
    """``conv`` with its weight scaled per output channel and ``shift`` as its bias, on x."""
    fused = copy.deepcopy(conv)
    with torch.no_grad():
        fused.weight.mul_(scale[:, None, None, None])
        fused.bias = nn.Parameter(shift.detach().clone())
        return fused(x)


def _fold_mistakes(conv: nn.Conv2d, bn: nn.BatchNorm2d, x: torch.Tensor) -> list[Mistake]:
    b = conv.bias if conv.bias is not None else torch.zeros(conv.out_channels)
    mean, var, gamma, beta = bn.running_mean, bn.running_var, bn.weight, bn.bias
    scale = gamma / torch.sqrt(var + bn.eps)

    def fold(s: torch.Tensor, shift: torch.Tensor) -> Callable[[], torch.Tensor]:
        return lambda: _folded(conv, x, s, shift)

    return [
        Mistake(fold(scale, beta + b * scale), "the running mean is not subtracted",
                "bias = beta + (conv.bias - running_mean) * scale"),
        Mistake(fold(scale, beta - mean * scale), "the convolution's own bias is lost",
                "bias = beta + (conv.bias - running_mean) * scale"),
        Mistake(fold(gamma / torch.sqrt(var), beta + (b - mean) * gamma / torch.sqrt(var)),
                "bn.eps is left out", "scale = gamma / sqrt(running_var + eps)"),
        Mistake(fold(gamma / (var + bn.eps), beta + (b - mean) * gamma / (var + bn.eps)),
                "it divides by the variance, not the standard deviation",
                "scale = gamma / sqrt(running_var + eps)"),
        Mistake(fold(scale.abs(), beta + (b - mean) * scale.abs()),
                "it loses the sign of bn.weight (gamma): a negative gamma flips its channel",
                "scale = gamma / sqrt(running_var + eps), with gamma's sign (not gamma ** 2 "
                "under the root, nor abs)"),
    ]


def _groups(conv: nn.Conv2d) -> Explanation | None:
    """Why folding fails on a grouped convolution when it worked on plain ones."""
    if conv.groups == 1:
        return None
    return (f"it fails on a grouped convolution (groups={conv.groups}): its weight has "
            f"in_channels / groups = {conv.in_channels // conv.groups} input channels",
            "build the new nn.Conv2d with groups=conv.groups (and every other setting), or "
            "start from copy.deepcopy(conv)")


@checker
def check_fuse_conv_bn(fn: Callable, *, seed: int | None = None,
                       allow_library: bool = False) -> None:
    """Exercise 10.1: ``fn(conv, bn) -> one nn.Conv2d`` equal to bn(conv(x)) in eval mode, for
    convolutions with and without a bias, strided, dilated, grouped, depthwise and
    reflect-padded, and gammas of both signs."""
    from torch.nn.utils import fusion

    from .. import deploy

    name = "fuse_conv_bn"
    rng, gen, _ = randomness(seed)
    watch = Watch(name, (fusion, deploy), allow_library)
    for c_in, c_out, bias, options in _settings(rng):
        conv, bn = _conv_bn(gen, c_in, c_out, bias, **options)
        before = [t.clone() for t in _tensors(conv, bn)]
        settings = ", ".join(f"{k}={v!r}" for k, v in options.items())
        context = f"nn.Conv2d({c_in}, {c_out}, 3, {settings}, bias={bias})"
        fused = call(watch, fn, conv, bn, context=context, explain=partial(_groups, conv),
                     hint="scale = bn.weight / torch.sqrt(bn.running_var + bn.eps) has one "
                          "entry per output channel: conv.weight * scale[:, None, None, None]")
        if not isinstance(fused, nn.Conv2d):
            fail(name, f"it returns {type(fused).__name__}, not an nn.Conv2d",
                 "build a new nn.Conv2d with bias=True and copy the folded weight and bias "
                 "into it", context)
        if any(not torch.equal(a, b) for a, b in zip(before, _tensors(conv, bn))):
            fail(name, "it changes the convolution or batch norm it was given",
                 "build a new nn.Conv2d (or a copy.deepcopy of conv) and fold into that", context)
        for setting in _SETTINGS:
            if getattr(fused, setting) != getattr(conv, setting):
                fail(name, f"the fused convolution has {setting}={getattr(fused, setting)!r}, "
                           f"the original {setting}={getattr(conv, setting)!r}",
                     "keep every setting of the original (stride, padding, dilation, groups, "
                     "padding_mode), or start from copy.deepcopy(conv)", context)
        x = torch.randn(2, c_in, 9, 11, generator=gen)
        with torch.no_grad():
            got = call(watch, fused, x, context=context, hint="return an nn.Conv2d that runs")
            diagnose(name, got, bn(conv(x)), _RULE, context=context,
                     mistakes=_fold_mistakes(conv, bn, x),
                     otherwise="the fused convolution does not equal conv then batch norm")
    passed(name)
