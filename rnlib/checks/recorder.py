"""Recording a forward pass: which convolutions, poolings, resizes and clamps it calls, on
tensors of which shapes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode


@dataclass
class Call:
    """One call seen during a forward pass: an nn.Conv2d ("conv", however it was applied), or a
    function that convolves with weights of no nn.Conv2d ("conv2d"), pools, resizes or clamps.
    ``input`` is the size before any explicit padding (F.pad, nn.ZeroPad2d) of that tensor;
    ``output`` stays None when the call raised."""

    op: str
    input: torch.Size
    module: nn.Module | None = None
    params: dict[str, Any] = field(default_factory=dict)
    output: torch.Size | None = None


DEFAULTS: dict[str, dict[str, Any]] = {  # the recorded functions, their arguments in order
    "conv2d": {"weight": None},
    "max_pool2d": {"kernel_size": None, "stride": None, "padding": 0},
    "avg_pool2d": {"kernel_size": None, "stride": None, "padding": 0},
    "interpolate": {"size": None, "scale_factor": None, "mode": "nearest", "align_corners": None},
    "hardtanh": {"min_val": -1.0, "max_val": 1.0},
    "relu6": {},
}


class Recorder(TorchFunctionMode):
    """Records the nn.Conv2d modules a forward pass calls (registered or not), F.conv2d with the
    weight of one of ``module``'s nn.Conv2d (``conv.forward(x)``, ``F.conv2d(x, conv.weight)``)
    as a call of that convolution, and the other functions of :data:`DEFAULTS` (nn.MaxPool2d,
    nn.Upsample and nn.ReLU6 included)."""

    def __init__(self, module: nn.Module | None = None) -> None:
        super().__init__()
        self.calls: list[Call] = []
        self._running: list[Call] = []  # conv modules inside their forward
        self._owners = {id(m.weight): m for m in (module.modules() if module else ())
                        if isinstance(m, nn.Conv2d)}
        self._padded: dict[int, tuple[torch.Tensor, torch.Size]] = {}  # output -> input size

    def __enter__(self) -> Recorder:
        hooks = nn.modules.module
        self._hooks = [hooks.register_module_forward_pre_hook(self._before),
                       hooks.register_module_forward_hook(self._after)]
        return super().__enter__()

    def __exit__(self, *exc: Any) -> None:
        for hook in self._hooks:
            hook.remove()
        super().__exit__(*exc)

    def _unpadded(self, x: torch.Tensor) -> torch.Size:
        kept = self._padded.get(id(x))
        return kept[1] if kept and kept[0] is x else x.shape

    def _before(self, module: nn.Module, inputs: tuple) -> None:
        if isinstance(module, nn.Conv2d) and inputs and isinstance(inputs[0], torch.Tensor):
            call = Call("conv", self._unpadded(inputs[0]), module)
            self.calls.append(call)
            self._running.append(call)

    def _after(self, module: nn.Module, inputs: tuple, output: Any) -> None:
        if isinstance(module, nn.Conv2d) and self._running:
            self._running.pop().output = output.shape

    def _call(self, op: str, args: tuple, kwargs: dict) -> Call | None:
        """The call to record, or None."""
        if op not in DEFAULTS or not args or not isinstance(args[0], torch.Tensor):
            return None
        names = list(DEFAULTS[op])
        params = dict(DEFAULTS[op]) | dict(zip(names, args[1:]))
        params |= {k: v for k, v in kwargs.items() if k in names}
        if op == "conv2d":
            if self._running:
                return None  # inside an nn.Conv2d: recorded as the module
            owner = self._owners.get(id(params["weight"]))
            if owner is not None and owner.weight is params["weight"]:
                return Call("conv", self._unpadded(args[0]), owner)
        return Call(op, self._unpadded(args[0]), params=params)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        op = getattr(func, "__name__", "")
        call = self._call(op, args, kwargs)
        if call is not None:
            self.calls.append(call)
        out = func(*args, **kwargs)
        first = out[0] if isinstance(out, tuple) else out
        if call is not None:
            call.output = first.shape
        if op == "pad" and args and isinstance(args[0], torch.Tensor):
            self._padded[id(first)] = (first, self._unpadded(args[0]))
        return out


def record(module: nn.Module, argument: Any) -> list[Call]:
    with Recorder(module) as recorder, torch.no_grad():
        module(argument)
    return recorder.calls


def convs_called(calls: list[Call]) -> list[Call]:
    return [c for c in calls if c.op == "conv"]


def signature(call: Call) -> tuple[int, int, int]:
    """What a convolution sees: channels and size of its input."""
    return int(call.input[1]), int(call.input[-2]), int(call.input[-1])


def by_signature(calls: list[Call]) -> list[Call]:
    """The convolution calls ordered by what they see, and among equals by the order of the
    calls: the order in which two implementations of a block correspond."""
    return sorted(convs_called(calls), key=signature)  # sorted() is stable


def seen(sig: tuple[int, int, int]) -> str:
    return f"{sig[0]} channels at {sig[1]}x{sig[2]}"
