"""The one tolerance policy of every check.

A result agrees with the expected one when they differ by at most :data:`RTOL` times the
expected magnitude: the value itself for a number, the largest entry for a tensor, or a scale
that the check states where the expected value can be zero (a learning rate at the last step
is compared at the scale of the base rate). 1e-5 leaves room for float32 arithmetic and
other orders of summation (the correct solutions of tests/corpus stay within 5e-7 of rnlib's
results, outputs and gradients, on the visible and the hidden seeds) and none for a mistake.
A message that shows two results prints as many digits as it takes to tell them apart.
"""

from __future__ import annotations

import math
from typing import Any

import torch

RTOL = 1e-5


def _as_float(value: Any) -> Any:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return float(value.detach())
    return value


def distance(got: Any, expected: Any, scale: float = 0.0) -> float:
    """How far ``got`` is from ``expected``, relative to the expected magnitude (or ``scale``,
    if larger): 0 when equal, infinite when they differ in kind or shape, or are not finite."""
    if isinstance(got, torch.Tensor) and isinstance(expected, torch.Tensor) and (
            got.numel() != 1 or expected.numel() != 1):
        if got.shape != expected.shape:
            return math.inf
        if not expected.numel():
            return 0.0
        a, b = got.detach().double(), expected.detach().double()
        gap, magnitude = float((a - b).abs().max()), max(float(b.abs().max()), scale)
    else:
        got, expected = _as_float(got), _as_float(expected)
        if not (isinstance(got, (int, float)) and isinstance(expected, (int, float))):
            return 0.0 if got == expected else math.inf
        gap, magnitude = abs(got - expected), max(abs(expected), scale)
    if math.isnan(gap) or math.isinf(gap):
        return math.inf
    return gap / magnitude if magnitude else (0.0 if gap == 0 else math.inf)


def agrees(got: Any, expected: Any, scale: float = 0.0) -> bool:
    """Whether ``got`` equals ``expected`` within the policy (numbers and tensors), or exactly
    (anything else: lists of sizes, strings)."""
    return distance(got, expected, scale) <= RTOL


def show(got: float, expected: float) -> tuple[str, str]:
    """The two numbers with the fewest significant digits (at least 4) that tell them apart."""
    for digits in range(4, 18):
        a, b = f"{got:.{digits}g}", f"{expected:.{digits}g}"
        if a != b:
            return a, b
    return repr(got), repr(expected)
