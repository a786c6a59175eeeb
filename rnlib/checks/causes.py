"""Causes of a wrong block that a recording shows: how its layers are kept, layers that change
the size, resizes and poolings unlike the paper's, and clamping ReLUs."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any, Protocol

from torch import nn

from .recorder import Call, seen, signature
from .report import Explanation, hw


class _Check(Protocol):
    breakdown: bool  # count convolutions per top-level part in messages
    hint_channels: str
    hint_reuse: str

    def count_hint(self, setting: Any) -> str: ...


def _hidden_modules(module: nn.Module) -> set[nn.Module]:
    """Modules kept in plain lists, tuples or dicts of a module: PyTorch does not register them."""
    hidden: set[nn.Module] = set()
    for m in module.modules():
        for value in vars(m).values():
            items = value.values() if isinstance(value, dict) else value
            if isinstance(value, (list, tuple, dict)):
                for item in items:
                    if isinstance(item, nn.Module):
                        hidden |= set(item.modules())
    return hidden


def _extra_parameters(module: nn.Module) -> list[str]:
    """Names of parameters that belong to no nn.Conv2d."""
    conv_params = {id(p) for m in module.modules() if isinstance(m, nn.Conv2d)
                   for p in m.parameters()}
    return [name for name, p in module.named_parameters() if id(p) not in conv_params]


def layers(student: nn.Module, calls: list[Call],
           names: dict[nn.Module, str]) -> Explanation | None:
    """Convolutions PyTorch does not see (plain lists, made in forward, F.conv2d with weights
    of no nn.Conv2d), and parameters outside convolutions."""
    stray = [c.module for c in calls if c.op == "conv" and c.module not in names]
    if stray and any(m in _hidden_modules(student) for m in stray):
        return ("its convolutions sit in a plain Python list (or dict), so PyTorch does not "
                "register them: .parameters() misses them and they are never trained",
                "use nn.ModuleList([...]) (or nn.ModuleDict, nn.Sequential) instead of a list")
    if stray:
        return ("it creates nn.Conv2d layers inside forward: new random weights at every call, "
                "never trained", "create every layer once in __init__; forward only applies them")
    if any(c.op == "conv2d" for c in calls):
        return ("it convolves with F.conv2d and weights that belong to no nn.Conv2d layer; the "
                "exercise asks for nn.Conv2d layers (rnlib and this checker copy weights "
                "between them)", "create nn.Conv2d modules in __init__ and apply them in forward")
    extra = _extra_parameters(student)
    if extra:
        return (f"it has parameters outside its nn.Conv2d layers ({', '.join(extra[:3])}); "
                "RefineNet's blocks have only convolutions (no batch norm)",
                "remove the extra layers: the paper's block is ReLUs, convolutions, poolings "
                "and sums")
    return None


def sizes(calls: list[Call], names: dict[nn.Module, str]) -> Explanation | None:
    """A convolution or pooling that changes the size of the map (explicit padding included)."""
    for c in calls:
        if c.output is not None and c.op != "interpolate" and c.output[-2:] != c.input[-2:]:
            label = f"convolution {names[c.module]!r}" if c.module else "its pooling"
            return (f"{label} turns {hw(c.input)} into {hw(c.output)}: inside a block every "
                    "convolution and pooling keeps the size",
                    "stride 1 keeps the size: 3x3 convolutions with padding=1 (or "
                    "padding='same'), 5x5 max pooling with padding=2")
    return None


def clamps(calls: list[Call]) -> Explanation | None:
    """A ReLU6 (or hardtanh) where the paper has a ReLU: the same below 6, not above."""
    if any(c.op in ("relu6", "hardtanh") for c in calls):
        return ("it clamps at an upper bound (ReLU6 or hardtanh); the paper's ReLU has none, "
                "and inputs above 6 show the difference", "use F.relu(x) or nn.ReLU()")
    return None


def resize(calls: list[Call], shapes: list[tuple[int, int, int, int]],
           complete: bool) -> Explanation | None:
    """Multi-resolution fusion: resize bilinearly to the size of the largest input, by height
    times width (§3.2)."""
    target = max((s[-2:] for s in shapes), key=lambda s: s[0] * s[1])
    most = max(shapes, key=lambda s: s[1] * s[2] * s[3])[-2:]
    resizes = [c for c in calls if c.op == "interpolate"]
    for c in resizes:
        p = c.params
        if p["scale_factor"] is not None:
            became = f"{hw(c.input)} becomes {hw(c.output)}" if c.output else hw(c.input)
            return (f"it resizes by a fixed factor (scale_factor={p['scale_factor']}): {became}, "
                    f"not the largest input's {hw(target)}",
                    "resize to a size, not by a factor: F.interpolate(y, size=largest.shape[-2:], "
                    "mode='bilinear', align_corners=True)")
        if p["mode"] != "bilinear":
            return (f"it resizes with mode={p['mode']!r}; fusion upsamples bilinearly",
                    "F.interpolate(y, size=..., mode='bilinear', align_corners=True)")
        if c.output is not None and tuple(c.output[-2:]) == most != target:
            return (f"it resizes to {hw(c.output)}, the size of the input with the most "
                    f"elements (numel() counts channels too), not to the largest input's "
                    f"{hw(target)}", "compare height x width only: max(sizes, key=lambda hw: "
                                     "hw[0] * hw[1]) over x.shape[-2:]")
        if c.output is not None and tuple(c.output[-2:]) != target:
            return (f"it resizes to {hw(c.output)}, not to the largest input's {hw(target)}",
                    "the target is the largest resolution (height x width) among the inputs, "
                    "whatever its place in the list and its number of channels")
    convolved = sum(c.op == "conv" and c.output is not None for c in calls)
    if not resizes and (complete or convolved > 1):  # two paths convolved, none resized
        return ("it never resizes: paths of different sizes must be brought to the largest "
                "one", "F.interpolate(y, size=largest.shape[-2:], mode='bilinear', "
                "align_corners=True) for each convolved path")
    return None


def pooling(calls: list[Call], complete: bool) -> Explanation | None:
    """Chained residual pooling: 5x5 max pooling, stride 1 (§3.2)."""
    pools = [c for c in calls if c.op in ("max_pool2d", "avg_pool2d")]
    for c in pools:
        if c.op == "avg_pool2d":
            return ("it uses average pooling; chained residual pooling takes the maximum",
                    "F.max_pool2d(path, 5, stride=1, padding=2) or nn.MaxPool2d(5, 1, 2)")
        k = c.params["kernel_size"]
        k = (k, k) if isinstance(k, int) else tuple(k)
        if any(v not in (1, 5) for v in k):
            return (f"its max pooling has a {k[0]}x{k[1]} window; the paper's is 5x5",
                    "F.max_pool2d(path, 5, stride=1, padding=2)")
    if complete and not pools:
        return ("it never pools", "each block is a 5x5 max pooling (stride 1, padding 2) "
                                  "followed by a 3x3 convolution")
    return None


def structure(check: _Check, student: nn.Module, calls: list[Call], expected_convs: int,
              setting: Any, complete: bool) -> Explanation | None:
    """Causes visible in the recording: how layers are kept, layers that change the size,
    and (once forward has finished) reuse, counts and unused layers."""
    names = {m: n for n, m in student.named_modules() if isinstance(m, nn.Conv2d)}
    found = layers(student, calls, names) or sizes(calls, names)
    if found or complete:
        return found or _counts(check, calls, names, expected_convs, setting)
    last = next((c for c in reversed(calls) if c.op == "conv"), None)
    if last and last.output is None and last.input[1] != last.module.in_channels:
        return (f"convolution {names[last.module]!r} (made for {last.module.in_channels} "
                f"channels) is applied to {seen(signature(last))}", check.hint_channels)
    return None


def _counts(check: _Check, calls: list[Call], names: dict[nn.Module, str], expected: int,
            setting: Any) -> Explanation | None:
    uses = Counter(c.module for c in calls if c.op == "conv")
    again = next((m for m, k in uses.items() if k > 1), None)
    if again is not None:
        return (f"convolution {names[again]!r} is applied {uses[again]} times; each of its "
                f"uses needs a convolution of its own", check.hint_reuse)
    if len(names) != expected:
        parts = _parts(names.values()) if check.breakdown else ""
        return (f"it has {len(names)} nn.Conv2d layers{parts}; rnlib's has {expected}",
                check.count_hint(setting))
    unused = [n for m, n in names.items() if m not in uses]
    if unused:
        verb = "is" if len(unused) == 1 else "are"
        return (f"{', '.join(repr(n) for n in unused)} {verb} created but never used in "
                "forward", "apply every layer you create (and create only what the figure "
                           "shows)")
    return None


def _parts(names: Iterable[str]) -> str:
    parts = Counter(n.split(".")[0] for n in names)
    return " (" + ", ".join(f"{k}: {v}" for k, v in parts.items()) + ")"
