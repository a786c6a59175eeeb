"""Pairing a student's convolutions with rnlib's, copying rnlib's weights into them, and
comparing the gradients that reach the inputs and the weights."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Protocol

import torch
from torch import nn

from .recorder import Call, by_signature, seen, signature
from .report import fail, hw
from .tolerance import agrees

Pairs = list[tuple[nn.Conv2d, nn.Conv2d]]


class _Hints(Protocol):
    component: str
    hint_layout: str
    hint_width: str


def pair(check: _Hints, student: nn.Module, calls: list[Call], ref_calls: list[Call],
         context: str) -> Pairs:
    """Match convolutions by what they see, then by the order of the calls; fail on one that
    sees what none of rnlib's sees, or differs in width, kernel or kind."""
    names = {m: n for n, m in student.named_modules()}
    mine, theirs = by_signature(calls), by_signature(ref_calls)
    extra = Counter(map(signature, mine)) - Counter(map(signature, theirs))
    if extra:
        odd = next(c for c in mine if signature(c) in extra)
        views = ", ".join(dict.fromkeys(seen(signature(c)) for c in theirs))
        fail(check.component, f"convolution {names[odd.module]!r} is applied to "
                              f"{seen(signature(odd))}; rnlib's convolutions see {views}",
             check.hint_layout, context)
    for m, r in zip(mine, theirs):
        a, b, name = m.module, r.module, names[m.module]
        if a.out_channels != b.out_channels:
            fail(check.component, f"convolution {name!r}, applied to {seen(signature(m))}, "
                                  f"gives {a.out_channels} channels, expected {b.out_channels}",
                 check.hint_width, context)
        if a.kernel_size != b.kernel_size:
            fail(check.component, f"convolution {name!r} has a {hw(a.kernel_size)} kernel, "
                                  f"expected {hw(b.kernel_size)}",
                 "3x3 convolutions: nn.Conv2d(c_in, c_out, 3, padding=1)", context)
        if (a.dilation, a.groups, a.padding_mode) != (b.dilation, b.groups, b.padding_mode):
            fail(check.component, f"convolution {name!r} has dilation {a.dilation}, groups "
                                  f"{a.groups} and padding_mode {a.padding_mode!r}, expected "
                                  f"{b.dilation}, {b.groups} and {b.padding_mode!r}",
                 "a plain convolution: leave dilation, groups and padding_mode as they are by "
                 "default", context)
    return [(m.module, r.module) for m, r in zip(mine, theirs)]


def copy_weights(pairs: Pairs) -> None:
    """Give each student convolution its reference's weights; a bias only one side has is set
    to zero on that side, so that both compute the same."""
    with torch.no_grad():
        for mine, ref in pairs:
            mine.weight.copy_(ref.weight)
            for a, b in ((mine, ref), (ref, mine)):
                if a.bias is not None:
                    a.bias.copy_(b.bias) if b.bias is not None else a.bias.zero_()


_CUT = "look for .detach(), .data or torch.no_grad() in forward"


def compare_gradients(check: _Hints, student: nn.Module, pairs: Pairs,
                      mine: list[torch.Tensor], theirs: list[torch.Tensor],
                      which: Callable[[int], str], context: str) -> None:
    """After backward on both sides: the gradients at the inputs (``which(i)`` names input
    ``i``) and at each paired convolution's weight must agree."""
    for i, (a, b) in enumerate(zip(mine, theirs)):
        if a.grad is None or not a.grad.any():
            fail(check.component, f"no gradient reaches {which(i)}",
                 "do not detach tensors, convert to numpy, or wrap forward in torch.no_grad()",
                 context)
        if not agrees(a.grad, b.grad):
            fail(check.component, f"the gradient reaching {which(i)} differs from rnlib's, "
                                  "though the output is the same: part of the computation is "
                                  "cut from autograd", _CUT, context)
    names = {m: n for n, m in student.named_modules()}
    for name, p in student.named_parameters():
        if p.grad is None:
            fail(check.component, f"parameter {name!r} gets no gradient: its result is cut "
                                  "from autograd before the output", _CUT, context)
    for a, b in pairs:
        if not agrees(a.weight.grad, b.weight.grad):
            fail(check.component, f"the gradient of convolution {names[a]!r} differs from "
                                  "rnlib's: part of the computation after it is cut from "
                                  "autograd", _CUT, context)
