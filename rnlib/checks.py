"""Exercise checkers: each takes the student's class or function, runs it against rnlib's
reference and raises :class:`ExerciseError` (an AssertionError) with a message that says what
is wrong and gives a hint; on success it prints "<component>: all checks passed.".

>>> from rnlib import checks
>>> checks.check_rcu(MyRCU)           # prints "RCU: all checks passed." or raises
>>> checks.check_rcu(MyRCU, seed=7)   # a hidden variant: other sizes, settings, weights, inputs

The block exercises (3.1 RCU, 4.1 fusion, 5.1 pooling, 6.1 the RefineNet block) share one
protocol, :class:`_BlockCheck`:

1. build the student's module and rnlib's on several constructor settings (odd, non-square
   sizes; the largest input not first; ``out_channels`` unlike every input width; block counts
   other than the defaults);
2. run the student's module on its own copies of the inputs (it never sees the reference's;
   changing an input tensor in place is reported, replacing entries of the input list is not),
   recording which convolutions it calls on which tensors;
3. match its convolutions to rnlib's by the tensors they see (channels and size) and, among
   equals, by the order of the calls: attribute names and the order of creation stay free;
   copy rnlib's weights into them (a bias only one side has is set to zero);
4. compare the outputs, then the gradients.

Every phase catches errors, and known causes (read from the error and from what the recording
saw: a convolution that shrinks the map, a resize by a fixed factor, an in-place ReLU, layers in
a plain list) become a specific message. A stub's NotImplementedError passes through untouched.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any, NoReturn

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from . import blocks
from .metrics import ConfusionMatrix

__all__ = ["ExerciseError", "check_pixel_accuracy", "check_mean_iou", "check_stage_sizes",
           "check_segmentation_loss", "check_rcu", "check_fusion", "check_crp",
           "check_refinenet_block", "check_decoder", "check_poly_lr", "check_relative_cost",
           "check_crp_receptive_field", "check_fuse_conv_bn"]

DEFAULT_SEED = 0  # the visible checks; teachers pass other seeds for hidden variants


class ExerciseError(AssertionError):
    """A check failed; the message says what is wrong and how to fix it."""


Explanation = tuple[str, str]  # (what is wrong, hint)
Mistakes = Iterator[tuple[torch.Tensor, str, str]]  # (what a mistake computes, what, hint)


def _error(component: str, what: str, hint: str, context: str | None = None) -> ExerciseError:
    where = f"\n  ({context})" if context else ""
    return ExerciseError(f"{component}: {what}{where}\nHint: {hint}")


def _fail(component: str, what: str, hint: str, context: str | None = None) -> NoReturn:
    raise _error(component, what, hint, context)


def _passed(component: str, notes: Sequence[str] = ()) -> None:
    for note in sorted(set(notes)):
        print(f"{component}: note: {note}")
    print(f"{component}: all checks passed.")


# Errors a student's code commonly raises, and what they mean; a None hint is the caller's.
_KNOWN_ERRORS: list[tuple[str, str, str | None]] = [
    (r"leaf Variable that requires grad is being used in an in-place operation",
     "it changes its input in place (autograd refuses: the input requires grad)",
     "use out-of-place operations on the input: F.relu(x), not nn.ReLU(inplace=True), "
     "F.relu_(x) or x += ..."),
    (r"modified by an inplace operation",
     "backward fails: a tensor that autograd saved was changed in place afterwards",
     "write out = out + y instead of out += y, and F.relu(x) instead of an in-place ReLU"),
    (r"does not require grad and does not have a grad_fn",
     "its output is cut from autograd: no gradient can flow back",
     "do not use torch.no_grad(), .detach(), .data or numpy inside forward"),
    (r"cannot assign module before Module.__init__\(\) call",
     "__init__ creates a layer before calling super().__init__()",
     "start __init__ with super().__init__()"),
    (r"unexpected keyword argument '(\w+)'",
     "its constructor does not take the argument {0}=", None),
    (r"to have (\d+) channels, but got (\d+) channels",
     "a convolution made for {0} input channels receives a tensor with {1} channels", None),
    (r"size of tensor a \((\d+)\) must match the size of tensor b \((\d+)\)",
     "it combines tensors of different sizes ({0} and {1} along one side)", None),
    (r"Target (\d+) is out of bounds",
     "the target holds {0} (pixels to ignore) and the loss treats it as a class",
     "pass ignore_index=255 to F.cross_entropy"),
]


def _known(err: BaseException, hint: str) -> Explanation | None:
    for pattern, what, why in _KNOWN_ERRORS:
        found = re.search(pattern, str(err))
        if found:
            return what.format(*found.groups()), why.format(*found.groups()) if why else hint
    return None


@contextmanager
def _guard(component: str, action: str, hint: str, context: str | None = None,
           explain: Callable[[], Explanation | None] | None = None) -> Iterator[None]:
    """Turn an error of the student's code into an ExerciseError: first the cause that
    ``explain`` finds, then a known error, else the error itself with ``hint``."""
    try:
        yield
    except (NotImplementedError, ExerciseError):
        raise
    except Exception as err:
        what, why = ((explain and explain()) or _known(err, hint)
                     or (f"{action} raised {type(err).__name__}: {err}", hint))
        raise _error(component, what, why, context) from err


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a.shape != b.shape:
        return False
    scale = float(b.detach().abs().max()) if b.numel() else 0.0
    return torch.allclose(a.detach().float(), b.detach().float(), rtol=1e-4,
                          atol=1e-5 * (1.0 + scale))


def _hw(shape: Sequence[int]) -> str:
    return "x".join(str(int(s)) for s in shape[-2:])


@contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Seed torch's global generator for the check only: the notebook's own state is kept."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def _randomness(seed: int | None) -> tuple[random.Random, torch.Generator, int]:
    seed = DEFAULT_SEED if seed is None else seed
    return random.Random(seed), torch.Generator().manual_seed(seed), seed


def _number(component: str, value: Any, what: str = "a number") -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        _fail(component, f"it returns {type(value).__name__}, not {what}",
              "end the function with return <the value>")


def _call(component: str, fn: Callable, *args: Any, hint: str, context: str | None = None,
          explain: Callable[[], Explanation | None] | None = None) -> Any:
    with _guard(component, "calling it", hint, context, explain):
        return fn(*args)


# -- recording a forward pass -----------------------------------------------------------------
@dataclass
class _Call:
    """One call seen during a forward pass: an nn.Conv2d module ("conv"), or a function that
    convolves, pools or resizes. ``output`` stays None when the call raised."""

    op: str
    input: torch.Size
    module: nn.Module | None = None
    params: dict[str, Any] = field(default_factory=dict)
    output: torch.Size | None = None


_DEFAULTS: dict[str, dict[str, Any]] = {  # the recorded functions, their arguments in order
    "conv2d": {},
    "max_pool2d": {"kernel_size": None, "stride": None, "padding": 0},
    "avg_pool2d": {"kernel_size": None, "stride": None, "padding": 0},
    "interpolate": {"size": None, "scale_factor": None, "mode": "nearest", "align_corners": None},
}


class _Recorder(TorchFunctionMode):
    """Records the nn.Conv2d modules a forward pass calls (whether registered or not) and its
    calls of F.conv2d, pooling and F.interpolate (nn.MaxPool2d and nn.Upsample included)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[_Call] = []
        self._running: list[_Call] = []  # conv modules inside their forward

    def __enter__(self) -> _Recorder:
        hooks = nn.modules.module
        self._hooks = [hooks.register_module_forward_pre_hook(self._before),
                       hooks.register_module_forward_hook(self._after)]
        return super().__enter__()

    def __exit__(self, *exc: Any) -> None:
        for hook in self._hooks:
            hook.remove()
        super().__exit__(*exc)

    def _before(self, module: nn.Module, inputs: tuple) -> None:
        if isinstance(module, nn.Conv2d) and inputs and isinstance(inputs[0], torch.Tensor):
            call = _Call("conv", inputs[0].shape, module)
            self.calls.append(call)
            self._running.append(call)

    def _after(self, module: nn.Module, inputs: tuple, output: Any) -> None:
        if isinstance(module, nn.Conv2d) and self._running:
            self._running.pop().output = output.shape

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        op = getattr(func, "__name__", "")
        if op not in _DEFAULTS or (op == "conv2d" and self._running) or not args:
            return func(*args, **kwargs)
        names = list(_DEFAULTS[op])
        params = dict(_DEFAULTS[op]) | dict(zip(names, args[1:]))
        params |= {k: v for k, v in kwargs.items() if k in names}
        call = _Call(op, args[0].shape, params=params)
        self.calls.append(call)
        out = func(*args, **kwargs)
        call.output = (out[0] if isinstance(out, tuple) else out).shape
        return out


def _record(module: nn.Module, argument: Any) -> list[_Call]:
    with _Recorder() as recorder, torch.no_grad():
        module(argument)
    return recorder.calls


def _convs_called(calls: list[_Call]) -> list[_Call]:
    return [c for c in calls if c.op == "conv"]


def _signature(call: _Call) -> tuple[int, int, int]:
    """What a convolution sees: channels and size of its input."""
    return int(call.input[1]), int(call.input[-2]), int(call.input[-1])


def _by_signature(calls: list[_Call]) -> list[_Call]:
    """The convolution calls ordered by what they see, and among equals by the order of the
    calls: the order in which two implementations of a block correspond."""
    return sorted(_convs_called(calls), key=_signature)  # sorted() is stable


def _seen(sig: tuple[int, int, int]) -> str:
    return f"{sig[0]} channels at {sig[1]}x{sig[2]}"


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


def _layers(student: nn.Module, calls: list[_Call],
            names: dict[nn.Module, str]) -> Explanation | None:
    """Convolutions PyTorch does not see (plain lists, made in forward, F.conv2d), and
    parameters outside convolutions."""
    stray = [c.module for c in calls if c.op == "conv" and c.module not in names]
    if stray and any(m in _hidden_modules(student) for m in stray):
        return ("its convolutions sit in a plain Python list (or dict), so PyTorch does not "
                "register them: .parameters() misses them and they are never trained",
                "use nn.ModuleList([...]) (or nn.ModuleDict, nn.Sequential) instead of a list")
    if stray:
        return ("it creates nn.Conv2d layers inside forward: new random weights at every call, "
                "never trained", "create every layer once in __init__; forward only applies them")
    if any(c.op == "conv2d" for c in calls):
        return ("it convolves with F.conv2d and weights of its own; the exercise asks for "
                "nn.Conv2d layers (rnlib and this checker copy weights between them)",
                "create nn.Conv2d modules in __init__ and apply them in forward")
    extra = _extra_parameters(student)
    if extra:
        return (f"it has parameters outside its nn.Conv2d layers ({', '.join(extra[:3])}); "
                "RefineNet's blocks have only convolutions (no batch norm)",
                "remove the extra layers: the paper's block is ReLUs, convolutions, poolings "
                "and sums")
    return None


def _sizes(calls: list[_Call], names: dict[nn.Module, str]) -> Explanation | None:
    """A convolution or pooling that changes the size of the map."""
    for c in calls:
        if c.output is not None and c.op != "interpolate" and c.output[-2:] != c.input[-2:]:
            label = f"convolution {names[c.module]!r}" if c.module else "its pooling"
            return (f"{label} turns {_hw(c.input)} into {_hw(c.output)}: inside a block every "
                    "convolution and pooling keeps the size",
                    "stride 1 keeps the size: 3x3 convolutions with padding=1 (or "
                    "padding='same'), 5x5 max pooling with padding=2")
    return None


def _explain_resize(calls: list[_Call], target: tuple[int, int],
                    complete: bool) -> Explanation | None:
    """Multi-resolution fusion: resize bilinearly to the size of the largest input (§3.2)."""
    resizes = [c for c in calls if c.op == "interpolate"]
    for c in resizes:
        p = c.params
        if p["scale_factor"] is not None:
            became = f"{_hw(c.input)} becomes {_hw(c.output)}" if c.output else _hw(c.input)
            return (f"it resizes by a fixed factor (scale_factor={p['scale_factor']}): {became}, "
                    f"not the largest input's {_hw(target)}",
                    "resize to a size, not by a factor: F.interpolate(y, size=largest.shape[-2:], "
                    "mode='bilinear', align_corners=True)")
        if p["mode"] != "bilinear":
            return (f"it resizes with mode={p['mode']!r}; fusion upsamples bilinearly",
                    "F.interpolate(y, size=..., mode='bilinear', align_corners=True)")
        if c.output is not None and tuple(c.output[-2:]) != target:
            return (f"it resizes to {_hw(c.output)}, not to the largest input's {_hw(target)}",
                    "the target is the largest resolution among the inputs, whatever its "
                    "place in the list")
    convolved = sum(c.op == "conv" and c.output is not None for c in calls)
    if not resizes and (complete or convolved > 1):  # two paths convolved, none resized
        return ("it never resizes: paths of different sizes must be brought to the largest "
                "one", "F.interpolate(y, size=largest.shape[-2:], mode='bilinear', "
                "align_corners=True) for each convolved path")
    return None


def _explain_pooling(calls: list[_Call], complete: bool) -> Explanation | None:
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


# -- the protocol of the block exercises ------------------------------------------------------
@dataclass
class _Setting:
    """One way to build and call a block: constructor arguments and input shapes."""

    args: tuple
    kwargs: dict[str, Any]
    shapes: list[tuple[int, int, int, int]]
    as_list: bool

    def construction(self, name: str) -> str:
        args = [repr(a) for a in self.args] + [f"{k}={v!r}" for k, v in self.kwargs.items()]
        return f"{name}({', '.join(args)})"

    def describe(self, name: str) -> str:
        shapes = ", ".join(str(s) for s in self.shapes)
        return (f"built as {self.construction(name)}, called on "
                f"{f'[{shapes}]' if self.as_list else shapes}")

    def pack(self, xs: Sequence[torch.Tensor]) -> Any:
        return list(xs) if self.as_list else xs[0]

    @property
    def largest(self) -> tuple[int, int]:
        return max((s[-2:] for s in self.shapes), key=lambda hw: hw[0] * hw[1])


def _pyramid(rng: random.Random, levels: int) -> list[tuple[int, int]]:
    """Sizes as a ResNet gives them: odd, non-square, each about half the previous."""
    h, w = rng.randrange(11, 20, 2), rng.randrange(13, 24, 2)
    if h == w:
        w += 2
    sizes = [(h, w)]
    for _ in range(levels - 1):
        h, w = (h + 1) // 2, (w + 1) // 2
        sizes.append((h, w))
    return sizes


class _BlockCheck:
    """The shared protocol (see the module docstring); subclasses give the settings, the
    reference, and the causes to look for."""

    component: str
    signature: str
    as_list = False
    conventions: tuple[bool, ...] = (True,)  # align_corners of the references
    breakdown = False  # count convolutions per top-level part in messages
    hint_error = "run your class on a small input in a cell of its own and read the traceback"
    hint_shape = "every convolution keeps the size: 3x3, stride 1, padding 1"
    hint_output = "compare your forward with the paper's figure, line by line"
    hint_layout = "apply each convolution to the tensor the paper's figure gives it"
    hint_channels = "give each convolution the width of the tensor it is applied to"
    hint_width = "check the in and out channels of each convolution"
    hint_reuse = "each convolution of the figure has weights of its own: create one per use"
    hint_inplace = ("an in-place operation on the input (nn.ReLU(inplace=True), F.relu_, +=) "
                    "overwrites the caller's tensor: use F.relu(x) and out = out + y")
    mistaken: list[tuple[type[nn.Module], str, str]] = []  # modules that make a classic mistake

    def __init__(self, seed: int | None) -> None:
        self.rng, self.gen, self.seed = _randomness(seed)

    # what each exercise gives
    def settings(self) -> list[_Setting]:
        raise NotImplementedError

    def reference(self, setting: _Setting, align_corners: bool) -> nn.Module:
        raise NotImplementedError

    def count_hint(self, setting: _Setting) -> str:
        raise NotImplementedError

    def explain(self, calls: list[_Call], setting: _Setting, complete: bool) -> Explanation | None:
        return None

    def shape_mistake(self, out: torch.Tensor, expected: torch.Tensor,
                      setting: _Setting) -> Explanation | None:
        return None

    def mistakes(self, ref: nn.Module, xs: list[torch.Tensor]) -> Mistakes:
        return iter(())

    # the protocol
    def run(self, cls: type[nn.Module]) -> None:
        notes: list[str] = []
        with _seeded(self.seed):
            for setting in self.settings():
                notes += self._check(cls, setting)
        _passed(self.component, notes)

    def _check(self, cls: type[nn.Module], s: _Setting) -> list[str]:
        """Build, run and record, match and copy weights, compare, then gradients."""
        name = getattr(cls, "__name__", self.component)
        context = s.describe(name)
        xs = [torch.randn(shape, generator=self.gen) for shape in s.shapes]
        refs = [self.reference(s, c) for c in self.conventions]
        ref_calls = _convs_called(_record(refs[0], s.pack(xs)))
        with _guard(self.component, f"building it as {s.construction(name)}",
                    f"its constructor must take the arguments of {self.signature}", context):
            student = cls(*s.args, **s.kwargs)
        if not isinstance(student, nn.Module):
            _fail(self.component, f"{type(student).__name__} is not an nn.Module",
                  "subclass nn.Module and call super().__init__() first in __init__", context)
        calls = self._first_run(student, s, xs, len(ref_calls), context)
        pairs = self._pair(student, calls, ref_calls, context)
        _copy_weights(pairs)
        for other in refs[1:]:
            other.load_state_dict(refs[0].state_dict())
        match = self._compare(student, refs, calls, s, xs, context)
        if match:  # pairs name refs[0]'s convolutions: take their twins in the matching one
            twins = dict(refs[match].named_modules())
            names = {m: n for n, m in refs[0].named_modules()}
            pairs = [(mine, twins[names[ref]]) for mine, ref in pairs]
        self._gradients(student, refs[match], pairs, s, xs, context)
        if self.conventions[match]:
            return []
        return ["it resizes with align_corners=False; the authors' code (and rnlib) use "
                "align_corners=True. Both are accepted."]

    def _first_run(self, student: nn.Module, s: _Setting, xs: list[torch.Tensor],
                   expected_convs: int, context: str) -> list[_Call]:
        """Run on copies of the inputs, recording calls; report changed inputs and the
        structure (layers, sizes, counts) before any weight is compared."""
        given = [x.clone() for x in xs]
        recorder = _Recorder()

        def explain() -> Explanation | None:
            return (self._structure(student, recorder.calls, expected_convs, s, complete=False)
                    or self.explain(recorder.calls, s, False))

        with _guard(self.component, "calling it", self.hint_error, context, explain):
            with recorder:
                student(s.pack(given))
        changed = [i for i, (g, x) in enumerate(zip(given, xs)) if not torch.equal(g, x)]
        if changed:
            which = f"the tensor of input path {changed[0]}" if s.as_list else "its input"
            lists = (" (replacing entries of the list, xs[i] = ..., is fine)" if s.as_list
                     else "")
            _fail(self.component, f"it changes {which} in place{lists}", self.hint_inplace,
                  context)
        found = self._structure(student, recorder.calls, expected_convs, s, complete=True)
        if found:
            _fail(self.component, *found, context)
        return recorder.calls

    def _structure(self, student: nn.Module, calls: list[_Call], expected_convs: int,
                   s: _Setting, complete: bool) -> Explanation | None:
        """Causes visible in the recording: how layers are kept, layers that change the size,
        and (once forward has finished) reuse, counts and unused layers."""
        names = {m: n for n, m in student.named_modules() if isinstance(m, nn.Conv2d)}
        found = _layers(student, calls, names) or _sizes(calls, names)
        if found or complete:
            return found or self._counts(calls, names, expected_convs, s)
        last = next((c for c in reversed(calls) if c.op == "conv"), None)
        if last and last.output is None and last.input[1] != last.module.in_channels:
            return (f"convolution {names[last.module]!r} (made for {last.module.in_channels} "
                    f"channels) is applied to {_seen(_signature(last))}", self.hint_channels)
        return None

    def _counts(self, calls: list[_Call], names: dict[nn.Module, str], expected: int,
                s: _Setting) -> Explanation | None:
        uses = Counter(c.module for c in calls if c.op == "conv")
        again = next((m for m, k in uses.items() if k > 1), None)
        if again is not None:
            return (f"convolution {names[again]!r} is applied {uses[again]} times; each of its "
                    f"uses needs a convolution of its own", self.hint_reuse)
        if len(names) != expected:
            return (f"it has {len(names)} nn.Conv2d layers{self._parts(names.values())}; rnlib's "
                    f"has {expected}", self.count_hint(s))
        unused = [n for m, n in names.items() if m not in uses]
        if unused:
            verb = "is" if len(unused) == 1 else "are"
            return (f"{', '.join(repr(n) for n in unused)} {verb} created but never used in "
                    "forward", "apply every layer you create (and create only what the figure "
                               "shows)")
        return None

    def _compare(self, student: nn.Module, refs: list[nn.Module], calls: list[_Call],
                 s: _Setting, xs: list[torch.Tensor], context: str) -> int:
        """The index of the reference whose output the student's equals, or fail saying why."""
        with _guard(self.component, "calling it", self.hint_error, context):
            out = student(s.pack([x.clone() for x in xs]))
        if not isinstance(out, torch.Tensor):
            _fail(self.component, f"forward returns {type(out).__name__}, not a tensor",
                  "end forward with return <the output tensor>", context)
        with torch.no_grad():
            expected = [ref(s.pack(xs)) for ref in refs]
        if out.shape != expected[0].shape:
            _fail(self.component, *(self.explain(calls, s, True)
                                    or self.shape_mistake(out, expected[0], s)
                                    or (f"the output has shape {tuple(out.shape)}, expected "
                                        f"{tuple(expected[0].shape)}", self.hint_shape)), context)
        match = next((i for i, e in enumerate(expected) if _close(out, e)), None)
        if match is None:
            _fail(self.component, *(self.explain(calls, s, True)
                                    or self._mistake(out, refs, xs, student, calls, s)
                                    or ("its output differs from rnlib's with the same weights",
                                        self.hint_output)), context)
        return match

    def _parts(self, names: Any) -> str:
        if not self.breakdown:
            return ""
        parts = Counter(n.split(".")[0] for n in names)
        return " (" + ", ".join(f"{k}: {v}" for k, v in parts.items()) + ")"

    def _pair(self, student: nn.Module, calls: list[_Call], ref_calls: list[_Call],
              context: str) -> list[tuple[nn.Conv2d, nn.Conv2d]]:
        """Match convolutions by what they see, then by the order of the calls."""
        names = {m: n for n, m in student.named_modules()}
        mine, theirs = _by_signature(calls), _by_signature(ref_calls)
        extra = Counter(map(_signature, mine)) - Counter(map(_signature, theirs))
        if extra:
            odd = next(c for c in mine if _signature(c) in extra)
            seen = ", ".join(dict.fromkeys(_seen(_signature(c)) for c in theirs))
            _fail(self.component, f"convolution {names[odd.module]!r} is applied to "
                                  f"{_seen(_signature(odd))}; rnlib's convolutions see {seen}",
                  self.hint_layout, context)
        for m, r in zip(mine, theirs):
            a, b, name = m.module, r.module, names[m.module]
            if a.out_channels != b.out_channels:
                _fail(self.component, f"convolution {name!r}, applied to {_seen(_signature(m))}, "
                                      f"gives {a.out_channels} channels, expected {b.out_channels}",
                      self.hint_width, context)
            if a.kernel_size != b.kernel_size:
                _fail(self.component, f"convolution {name!r} has a {_hw(a.kernel_size)} kernel, "
                                      f"expected {_hw(b.kernel_size)}",
                      "3x3 convolutions: nn.Conv2d(c_in, c_out, 3, padding=1)", context)
            if (a.dilation, a.groups, a.padding_mode) != (b.dilation, b.groups, b.padding_mode):
                _fail(self.component, f"convolution {name!r} has dilation {a.dilation}, groups "
                                      f"{a.groups} and padding_mode {a.padding_mode!r}, expected "
                                      f"{b.dilation}, {b.groups} and {b.padding_mode!r}",
                      "a plain convolution: leave dilation, groups and padding_mode as they are "
                      "by default", context)
        return [(m.module, r.module) for m, r in zip(mine, theirs)]

    def _mistake(self, out: torch.Tensor, refs: list[nn.Module], xs: list[torch.Tensor],
                 student: nn.Module, calls: list[_Call], s: _Setting) -> Explanation | None:
        """A classic mistake that gives the student's output: computed with the reference's
        layers, or built as a mistaken module whose weights the student's then receive."""
        with torch.no_grad():
            for ref in refs:
                for alternative, what, hint in self.mistakes(ref, xs):
                    if _close(out, alternative):
                        return what, hint
            for mistaken, what, hint in self.mistaken:
                model = mistaken(*s.args, **s.kwargs)
                mine, theirs = _by_signature(calls), _by_signature(_record(model, s.pack(xs)))
                if list(map(_signature, mine)) != list(map(_signature, theirs)):
                    continue
                _copy_weights([(m.module, t.module) for m, t in zip(mine, theirs)])
                if _close(student(s.pack([x.clone() for x in xs])), model(s.pack(xs))):
                    return what, hint
        return None

    def _gradients(self, student: nn.Module, ref: nn.Module,
                   pairs: list[tuple[nn.Conv2d, nn.Conv2d]], s: _Setting,
                   xs: list[torch.Tensor], context: str) -> None:
        mine = [x.clone().requires_grad_() for x in xs]
        theirs = [x.clone().requires_grad_() for x in xs]
        with _guard(self.component, "calling it on inputs that require grad", self.hint_error,
                    context):
            out = student(s.pack(mine))
        expected = ref(s.pack(theirs))
        weight = torch.randn(expected.shape, generator=self.gen)
        with _guard(self.component, "backward", self.hint_error, context):
            (out * weight).sum().backward()
        (expected * weight).sum().backward()
        for i, (a, b) in enumerate(zip(mine, theirs)):
            which = f"input path {i}" if s.as_list else "the input"
            if a.grad is None or not a.grad.any():
                _fail(self.component, f"no gradient reaches {which}",
                      "do not detach tensors, convert to numpy, or wrap forward in "
                      "torch.no_grad()", context)
            if not _close(a.grad, b.grad):
                _fail(self.component, f"the gradient reaching {which} differs from rnlib's, "
                                      "though the output is the same: part of the computation "
                                      "is cut from autograd", "look for .detach(), .data or "
                                                              "torch.no_grad() in forward", context)
        names = {m: n for n, m in student.named_modules()}
        for name, p in student.named_parameters():
            if p.grad is None:
                _fail(self.component, f"parameter {name!r} gets no gradient: its result is cut "
                                      "from autograd before the output",
                      "look for .detach(), .data or torch.no_grad() in forward", context)
        for a, b in pairs:
            if not _close(a.weight.grad, b.weight.grad):
                _fail(self.component, f"the gradient of convolution {names[a]!r} differs from "
                                      "rnlib's: part of the computation after it is cut from "
                                      "autograd", "look for .detach(), .data or "
                                                  "torch.no_grad() in forward", context)


def _copy_weights(pairs: list[tuple[nn.Conv2d, nn.Conv2d]]) -> None:
    """Give each student convolution its reference's weights; a bias only one side has is set
    to zero on that side, so that both compute the same."""
    with torch.no_grad():
        for mine, ref in pairs:
            mine.weight.copy_(ref.weight)
            for a, b in ((mine, ref), (ref, mine)):
                if a.bias is not None:
                    a.bias.copy_(b.bias) if b.bias is not None else a.bias.zero_()


# -- 01 data and metrics ----------------------------------------------------------------------
def _labels(gen: torch.Generator, shape: tuple[int, ...], target_classes: int,
            pred_classes: int, ignore: int) -> tuple[torch.Tensor, torch.Tensor]:
    target = torch.randint(0, target_classes, shape, generator=gen)
    target[torch.rand(shape, generator=gen) < 0.15] = ignore
    pred = torch.randint(0, pred_classes, shape, generator=gen)
    return pred, target


def _confusion(pred: torch.Tensor, target: torch.Tensor, k: int, ignore: int) -> ConfusionMatrix:
    cm = ConfusionMatrix(k, ignore_index=ignore)
    cm.update(pred, target)
    return cm


def _counted(ignore: int) -> Explanation:
    """The message for a result that counts the pixels under ``ignore``: with another ignore
    index than 255 (checked after 255), a function that always drops 255 does that."""
    if ignore == 255:
        return ("pixels under the ignore index are counted",
                "keep only target != ignore_index before comparing")
    return ("it ignores its ignore_index argument (it always drops 255)",
            "compare with the ignore_index parameter, not 255")


def check_pixel_accuracy(fn: Callable, *, seed: int | None = None) -> None:
    """Exercise 1.1: ``fn(pred, target, ignore_index=255) -> float``."""
    name = "pixel_accuracy"
    rng, gen, _ = _randomness(seed)
    for ignore in (255, rng.choice([4, 9])):
        shape = (2, rng.randint(9, 14), rng.randint(7, 12))
        pred, target = _labels(gen, shape, 4, 4, ignore)
        context = f"{shape[0]} label maps of {_hw(shape)}, ignore_index={ignore}"
        got = _number(name, _call(name, fn, pred, target, ignore, hint="index with a mask: "
                                  "keep = target != ignore_index", context=context))
        valid = target != ignore
        correct = int((pred[valid] == target[valid]).sum())
        expected = correct / int(valid.sum())
        if abs(got - expected) < 1e-6:
            continue
        for value, what, hint in [
            ((pred == target).float().mean().item(), *_counted(ignore)),
            (100 * expected, "it gives a percentage", "return a fraction between 0 and 1"),
            (float(correct), "it returns the number of correct pixels",
             "divide it by the number of valid pixels"),
        ]:
            if abs(got - value) < 1e-6:
                _fail(name, what, hint, context)
        _fail(name, f"got {got:.4f}, expected {expected:.4f}", "correct pixels / valid pixels",
              context)
    _passed(name)


def check_mean_iou(fn: Callable, *, seed: int | None = None) -> None:
    """Exercise 1.2: ``fn(pred, target, num_classes, ignore_index=255) -> float``."""
    name = "mean_iou"
    rng, gen, _ = _randomness(seed)
    for k, ignore in [(5, 255), (rng.randint(5, 7), rng.choice([0, 200]))]:
        shape = (2, rng.randint(9, 14), rng.randint(7, 12))
        # the last class is absent from both; the one before occurs only in the prediction
        pred, target = _labels(gen, shape, k - 2, k - 1, 254)
        if ignore == 0:
            pred, target = pred + 1, torch.where(target == 254, 0, target + 1)
        else:
            target[target == 254] = ignore
        context = f"{k} classes, ignore_index={ignore}"
        got = _number(name, _call(name, fn, pred, target, k, ignore, hint="per class: "
                                  "TP / (TP + FP + FN) over the pixels not ignored",
                                  context=context))
        cm = _confusion(pred, target, k, ignore)
        expected = cm.miou()
        if abs(got - expected) < 1e-6:
            continue
        m = cm.matrix.double()  # rows: target, columns: prediction
        tp, in_target, in_pred = m.diag(), m.sum(1), m.sum(0)
        everything = _confusion(pred, target, 256, -1)
        for value, what, hint in [
            (torch.nan_to_num(cm.iou()).mean(), "a class absent from both prediction and "
             "target counts as IoU 0", "average only over classes whose union is not empty"),
            (everything.iou()[:k].nanmean(), *_counted(ignore)),
            (cm.iou()[in_target > 0].mean(), "it averages over the classes of the target only",
             "a class that only the prediction contains counts too (its IoU is 0)"),
            ((tp / in_pred)[in_pred > 0].mean(), "it computes precision, TP / (TP + FP)",
             "IoU's denominator is the union: TP + FP + FN"),
            ((2 * tp / (in_pred + in_target))[(in_pred + in_target) > 0].mean(),
             "it computes the Dice coefficient, 2 TP / (2 TP + FP + FN)",
             "IoU = TP / (TP + FP + FN)"),
        ]:
            if abs(got - float(value)) < 1e-6:
                _fail(name, what, hint, context)
        _fail(name, f"got {got:.4f}, expected {expected:.4f}",
              "IoU_c = TP / (TP + FP + FN); mIoU is their mean over the classes present", context)
    _passed(name)


# -- 02 why downsampling hurts ----------------------------------------------------------------
def _halvings(n: int, count: int) -> int:
    for _ in range(count):
        n = (n + 1) // 2  # floor((n + 2 * pad - k) / 2) + 1 for the stem and every stage
    return n


def check_stage_sizes(fn: Callable, *, seed: int | None = None) -> None:
    """Exercise 2.1: ``fn(height, width) -> [(h, w) of layer1, layer2, layer3, layer4]``."""
    from .backbones import ResNetBackbone

    name = "stage_sizes"
    rng, _, seed = _randomness(seed)
    with _seeded(seed):
        net = ResNetBackbone("resnet18").eval()
    sizes = [(128, 128), (512, 375), (97, 130), (33, 65)]
    if seed != DEFAULT_SEED:
        sizes = [(rng.randint(17, 300), rng.randint(17, 300)) for _ in range(4)] + [(256, 160)]
    for h, w in sizes:
        with torch.no_grad():
            expected = [tuple(f.shape[-2:]) for f in net(torch.zeros(1, 3, h, w))]
        raw = _call(name, fn, h, w, hint="return a list of four (h, w) pairs")
        try:
            got = [tuple(int(v) for v in s) for s in raw]
        except (TypeError, ValueError):
            _fail(name, f"for a {h}x{w} input it returns {raw!r}", "return a list of four "
                                                                   "(h, w) pairs of ints")
        if got == expected:
            continue
        context = f"a {h}x{w} input: you give {got}, the network gives {expected}"
        if len(got) != 4:
            _fail(name, f"it returns {len(got)} sizes",
                  "four stages: layer1 (1/4) .. layer4 (1/32)", context)
        if got == [(b, a) for a, b in expected]:
            _fail(name, "height and width are swapped", "return (h, w) pairs: height first",
                  context)
        if got == [(_halvings(h, i), _halvings(w, i)) for i in (1, 2, 3, 4)]:
            _fail(name, "layer1 comes out at 1/2: the max pooling of the stem is missing",
                  "the stem's 7x7 convolution and its 3x3 max pooling both halve: layer1 is at "
                  "1/4", context)
        if got == [(h // r, w // r) for r in (4, 8, 16, 32)]:
            _fail(name, "each halving rounds down; sides that are not multiples of 32 come out "
                        "too small", "a stride-2 layer gives floor((n + 2 * pad - k) / 2) + 1, "
                                     "i.e. ceil(n / 2)", context)
        _fail(name, f"for a {h}x{w} input the sizes differ",
              "each stride-2 layer gives floor((n + 2 * pad - k) / 2) + 1", context)
    _passed(name)


def check_segmentation_loss(fn: Callable, *, seed: int | None = None) -> None:
    """Exercise 2.2: ``fn(logits (N, K, h, w), target (N, H, W)) -> loss`` upsampling first.
    Either align_corners convention of the bilinear upsampling is accepted."""
    name = "segmentation_loss"
    rng, gen, _ = _randomness(seed)
    for n, k, h, w, scale in [(2, 3, 5, 7, 4), (1, rng.randint(4, 6), rng.randint(3, 6),
                                                  rng.randint(5, 9), rng.choice([4, 8]))]:
        logits = torch.randn(n, k, h, w, generator=gen) * 4
        target = torch.randint(0, k, (n, h * scale, w * scale), generator=gen)
        target[:, :3] = 255
        context = f"logits {tuple(logits.shape)}, target {tuple(target.shape)}"
        hint = ("upsample the logits to target.shape[-2:], then "
                "F.cross_entropy(..., ignore_index=255)")
        got = _call(name, fn, logits, target, hint=hint, context=context)
        if not isinstance(got, torch.Tensor) or got.ndim != 0:
            kind = (f"a tensor of shape {tuple(got.shape)}" if isinstance(got, torch.Tensor)
                    else type(got).__name__)
            _fail(name, f"it returns {kind}, not a scalar tensor",
                  "F.cross_entropy(...) with the default reduction='mean' returns one", context)
        size = target.shape[-2:]
        expected = [F.cross_entropy(F.interpolate(logits, size=size, mode="bilinear",
                                                  align_corners=c), target, ignore_index=255)
                    for c in (False, True)]
        if not any(torch.allclose(got, e, atol=1e-5) for e in expected):
            small = F.interpolate(target[:, None].float(), size=(h, w), mode="nearest")[:, 0]
            for value, what, why in [
                (F.nll_loss(torch.log(blocks.resize(logits.softmax(1), size)), target,
                            ignore_index=255),
                 "it applies softmax before upsampling (then log): unstable, and not the loss "
                 "on the upsampled logits", "upsample the logits, then F.cross_entropy, which "
                                            "applies log-softmax itself"),
                (F.cross_entropy(logits, small.long(), ignore_index=255),
                 "it shrinks the target to the logits' size: the loss ignores the fine detail",
                 "upsample the logits to the target's size instead"),
                (F.cross_entropy(F.interpolate(logits, size=size), target, ignore_index=255),
                 "it upsamples the logits with mode='nearest'", "mode='bilinear'"),
                (F.cross_entropy(blocks.resize(logits, size), target, ignore_index=255,
                                 reduction="sum"),
                 "it sums the loss over pixels", "F.cross_entropy averages over the valid "
                                                 "pixels: keep reduction='mean'"),
            ]:
                if torch.allclose(got, value, atol=1e-4):
                    _fail(name, what, why, context)
            _fail(name, f"got {float(got):.4f}, expected {float(expected[0]):.4f}",
                  "resize the logits to the target's size (bilinear), then F.cross_entropy "
                  "with ignore_index=255", context)
        huge = _call(name, fn, logits * 1e4, target, hint=hint, context=context)
        if not torch.isfinite(huge):
            _fail(name, "it is not finite for large logits",
                  "let F.cross_entropy take the log-softmax", context)
    _passed(name)


# -- 03 Residual Conv Unit --------------------------------------------------------------------
class _RCUCheck(_BlockCheck):
    component = "RCU"
    signature = "RCU(channels)"
    hint_shape = "3x3 convolutions with padding 1 keep the size; keep the channel count"
    hint_output = "order: ReLU, conv1, ReLU, conv2, then add the input x (paper Fig. 3b)"
    hint_layout = "both convolutions map channels to channels at the input's size"
    hint_width = "both convolutions keep the width: nn.Conv2d(channels, channels, 3, padding=1)"
    hint_channels = hint_width
    hint_reuse = "create two convolutions, conv1 and conv2, each with weights of its own"
    hint_inplace = ("an in-place ReLU on x (nn.ReLU(inplace=True), F.relu_, x.relu_()) turns "
                    "the shortcut into relu(x) + F(x): use F.relu(x)")

    def settings(self) -> list[_Setting]:
        out = []
        for n in (2, 1):
            c, (h, w) = self.rng.randint(3, 8), _pyramid(self.rng, 1)[0]
            out.append(_Setting((c,), {}, [(n, c, h, w)], as_list=False))
        return out

    def reference(self, setting: _Setting, align_corners: bool) -> nn.Module:
        return blocks.RCU(*setting.args)

    def count_hint(self, setting: _Setting) -> str:
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


def check_rcu(cls: type[nn.Module], *, seed: int | None = None) -> None:
    """Exercise 3.1: ``cls(channels)``, forward(x) -> x + conv2(relu(conv1(relu(x)))) (§3.2)."""
    _RCUCheck(seed).run(cls)


# -- 04 Multi-Resolution Fusion ---------------------------------------------------------------
class _FusionCheck(_BlockCheck):
    component = "MultiResolutionFusion"
    signature = "MultiResolutionFusion(in_channels, out_channels)"
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

    def settings(self) -> list[_Setting]:
        r = self.rng
        widths = r.sample(range(4, 17), 4)
        out = widths.pop()
        sizes = _pyramid(r, 3)
        same = r.randint(4, 12)
        single = r.randint(4, 12)

        def setting(channels: list[int], width: int, hws: list[tuple[int, int]],
                    n: int = 2) -> _Setting:
            return _Setting((channels, width), {}, [(n, c, *hw) for c, hw in zip(channels, hws)],
                            as_list=True)

        return [setting(widths, out, sizes),                            # finest first
                setting([same, same], same + 3, sizes[:2][::-1], n=1),  # the largest last
                setting([single], single, sizes[1:2]),                  # passes through
                setting([single], out, sizes[:1])]                      # one path, one conv

    def reference(self, setting: _Setting, align_corners: bool) -> nn.Module:
        return blocks.MultiResolutionFusion(*setting.args, align_corners=align_corners)

    def count_hint(self, setting: _Setting) -> str:
        channels, out = setting.args
        if len(channels) == 1 and channels[0] == out:
            return ("with one input that already has out_channels channels, fusion passes it "
                    "through: no convolution")
        return f"one 3x3 convolution per input path: {len(channels)} here"

    def explain(self, calls: list[_Call], setting: _Setting, complete: bool) -> Explanation | None:
        if len(setting.shapes) == 1:
            return None
        return _explain_resize(calls, setting.largest, complete)

    def shape_mistake(self, out: torch.Tensor, expected: torch.Tensor,
                      setting: _Setting) -> Explanation | None:
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


def check_fusion(cls: type[nn.Module], *, seed: int | None = None) -> None:
    """Exercise 4.1: ``cls(in_channels, out_channels)``, forward(list of maps) -> one map (§3.2).
    Bilinear resizing with either align_corners is accepted (the authors use True)."""
    _FusionCheck(seed).run(cls)


# -- 05 Chained Residual Pooling --------------------------------------------------------------
class _CRPCheck(_BlockCheck):
    component = "ChainedResidualPooling"
    signature = "ChainedResidualPooling(channels, num_blocks=4)"
    hint_shape = ("5x5 max pooling with stride 1 and padding 2 keeps the size, and so does each "
                  "convolution")
    hint_output = ("x = relu(x); out = path = x; for each block: path = conv(maxpool5x5(path)); "
                   "out = out + path")
    hint_layout = "every convolution maps channels to channels at the input's size"
    hint_width = "nn.Conv2d(channels, channels, 3, padding=1, bias=False)"
    hint_channels = hint_width
    hint_reuse = "each pooling block has a convolution of its own: num_blocks of them"

    def settings(self) -> list[_Setting]:
        r = self.rng
        out = []
        for args in [(r.randint(3, 6), r.randint(2, 3)), (r.randint(3, 6),), (r.randint(3, 6), 1)]:
            (h, w), n = _pyramid(r, 1)[0], r.randint(1, 2)
            out.append(_Setting(args, {}, [(n, args[0], h, w)], as_list=False))
        return out

    def reference(self, setting: _Setting, align_corners: bool) -> nn.Module:
        return blocks.ChainedResidualPooling(*setting.args)

    def count_hint(self, setting: _Setting) -> str:
        blocks_ = setting.args[1] if len(setting.args) > 1 else 4
        return (f"one convolution per pooling block: num_blocks={blocks_} of them here "
                "(use the argument; its default is 4)")

    def explain(self, calls: list[_Call], setting: _Setting, complete: bool) -> Explanation | None:
        return _explain_pooling(calls, complete)

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


def check_crp(cls: type[nn.Module], *, seed: int | None = None) -> None:
    """Exercise 5.1: ``cls(channels, num_blocks=4)``, forward(x) -> same shape (§3.2)."""
    _CRPCheck(seed).run(cls)


# -- 06 the RefineNet block and cascade -------------------------------------------------------
class _OutBeforePool(blocks.RefineNetBlock):
    def forward(self, xs: Sequence[torch.Tensor]) -> torch.Tensor:
        return self.pool(self.out(self.fuse([adapt(x) for adapt, x in zip(self.adapt, xs)])))


class _RefineNetBlockCheck(_BlockCheck):
    component = "RefineNetBlock"
    signature = ("RefineNetBlock(in_channels, out_channels, rcus_per_path=2, crp_blocks=4, "
                 "out_rcus=3)")
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

    def settings(self) -> list[_Setting]:
        r = self.rng
        w = r.sample(range(4, 13), 4)
        sizes = _pyramid(r, 3)
        top = r.randint(4, 10)

        def setting(channels: list[int], out: int, hws: list[tuple[int, int]],
                    **options: Any) -> _Setting:
            return _Setting((channels, out), options,
                            [(1, c, *hw) for c, hw in zip(channels, hws)], as_list=True)

        return [setting([w[0], 2 * w[0]], w[0], sizes[:2], rcus_per_path=[2, 0]),  # the cascade's
                setting(w[:3], w[3], sizes[::-1], rcus_per_path=1, crp_blocks=2, out_rcus=1),
                setting([top], top, sizes[1:2], rcus_per_path=2, crp_blocks=1, out_rcus=2),
                setting(w[1:3], w[0], sizes[:2])]                                  # the defaults

    def reference(self, setting: _Setting, align_corners: bool) -> nn.Module:
        return blocks.RefineNetBlock(*setting.args, **setting.kwargs, align_corners=align_corners)

    def count_hint(self, setting: _Setting) -> str:
        return ("rcus_per_path[i] RCUs (2 convolutions each) on path i, one fusion convolution "
                "per path (none for a single path of out_channels channels), crp_blocks pooling "
                "convolutions, out_rcus output RCUs: use the arguments, the checker varies them")

    def explain(self, calls: list[_Call], setting: _Setting, complete: bool) -> Explanation | None:
        several = len(setting.shapes) > 1
        return ((several and _explain_resize(calls, setting.largest, complete))
                or _explain_pooling(calls, complete))

    mistaken = [(_OutBeforePool, "the output RCUs come before the pooling",
                 "adapt, fuse, pool, out (paper Fig. 3a)")]


def check_refinenet_block(cls: type[nn.Module], *, seed: int | None = None) -> None:
    """Exercise 6.1: ``cls(in_channels, out_channels, rcus_per_path=2, crp_blocks=4,
    out_rcus=3)``: adapt -> fuse -> pool -> out (§3.2, Fig. 3a)."""
    _RefineNetBlockCheck(seed).run(cls)


def check_decoder(fn: Callable, decoder: nn.Module, *, seed: int | None = None) -> None:
    """Exercise 6.2: ``fn(decoder, features) -> logits`` runs a RefineNetDecoder by hand, on
    ``decoder`` and on a 2-cascade decoder that the check builds (§3.1, Fig. 2c)."""
    from .models.refinenet import CASCADES, RefineNetDecoder

    name = "cascade forward"
    rng, gen, seed = _randomness(seed)
    with _seeded(seed):
        other = RefineNetDecoder((8, 12, 16, 20), 3, groups=CASCADES["2-cascade"], widths=(12, 8),
                                 rcus=1, out_rcus=1, crp_blocks=2)
    hard_coded = ("it runs the decoder given but not a 2-cascade one (groups "
                  f"{other.groups})", "loop over zip(decoder.blocks, decoder.groups); do not "
                                      "hard-code four blocks or the stage indices")
    for what, net, explained in [("the decoder given", decoder, None),
                                 ("a 2-cascade decoder", other, hard_coded)]:
        training = net.training
        net.eval()
        try:
            _check_cascade(fn, net, name, what, rng, gen, explained)
        finally:
            net.train(training)
    _passed(name)


def _check_cascade(fn: Callable, decoder: nn.Module, name: str, what: str, rng: random.Random,
                   gen: torch.Generator, explained: Explanation | None) -> None:
    h, w = rng.randrange(57, 80, 2), rng.randrange(65, 100, 2)
    widths = {int(k): m.in_channels for k, m in decoder.adapt.items()}
    features = [torch.randn(1, widths.get(i, 1), _halvings(h, i + 2), _halvings(w, i + 2),
                            generator=gen) for i in range(max(widths) + 1)]
    context = (f"{what}: groups {decoder.groups}, features of "
               f"{', '.join(_hw(f.shape) for f in features)}")
    given = [f.clone() for f in features]
    with torch.no_grad():
        expected = decoder(features)
        got = _call(name, fn, decoder, given, context=context, explain=lambda: explained,
                    hint="block k takes the adapted features of its group, followed by the "
                         "previous block's output (paths + [previous]); coarse to fine")
    if any(not torch.equal(a, b) for a, b in zip(given, features)):
        _fail(name, "it changes the feature tensors in place", "compute new tensors: "
                                                               "x = adapt(x), not in-place updates",
              context)
    if not isinstance(got, torch.Tensor):
        _fail(name, f"it returns {type(got).__name__}, not a tensor", "return the logits", context)
    if got.shape != expected.shape:
        _fail(name, f"output shape {tuple(got.shape)}, expected {tuple(expected.shape)}",
              "the last block works at the finest resolution (1/4), and the classifier gives "
              "num_classes channels; no resize at the end", context)
    if not _close(got, expected):
        with torch.no_grad():
            again = fn(decoder, [f.clone() for f in features])
        if not _close(got, again):
            _fail(name, "its output changes from call to call", "the exercise runs in eval "
                  "mode: skip dropout, or use the decoder's own dropout modules (off in eval mode)",
                  context)
        _fail(name, *(explained or ("the logits differ from the decoder's own forward",
              "go coarse to fine over decoder.groups (do not hard-code the 4-cascade): block k "
              "takes the adapted stage features plus the previous block's output, appended "
              "last")), context)


# -- 07 training ------------------------------------------------------------------------------
def check_poly_lr(fn: Callable, *, seed: int | None = None) -> None:
    """Exercise 7.1: ``fn(step, total_steps, base_lr, power=0.9) -> lr``."""
    name = "poly_lr"
    rng, _, _ = _randomness(seed)
    base, power = rng.choice([0.01, 0.1, 3e-4]), rng.choice([0.5, 2.0])
    cases = [(s, t, base, 0.9) for s, t in [(0, 100), (50, 100), (99, 100), (100, 100), (7, 13)]]
    cases += [(rng.randint(1, 40), 40, base, power)]
    for step, total, lr, p in cases:
        expected = lr * (1 - step / total) ** p
        got = _number(name, _call(name, fn, step, total, lr, p,
                                  hint="lr = base_lr * (1 - step / total_steps) ** power"))
        if abs(got - expected) <= 1e-9 * max(1.0, lr):
            continue
        context = f"step {step} of {total}, base_lr {lr}, power {p}"
        for value, what, hint in [
            (lr * (1 - step / total), "the rate decays linearly",
             "raise (1 - step / total_steps) to the power"),
            (lr * (1 - step / total) ** 0.9, "it ignores its power argument (uses 0.9)",
             "use the power parameter"),
            (lr * (1 - step / total ** p), "only total_steps is raised to the power",
             "parenthesise: (1 - step / total_steps) ** power"),
            (lr * (1 - step // total) ** p, "it divides with //: the rate stays at base_lr "
             "until the end", "use / for the fraction of training done"),
            (lr * max(0.0, 1 - (step + 1) / total) ** p, "it counts steps from 1",
             "at step 0 the rate is base_lr: (1 - step / total_steps)"),
        ]:
            if abs(got - value) <= 1e-12:
                _fail(name, what, hint, context)
        _fail(name, f"at step {step} of {total} you give {got:.6g}, expected {expected:.6g}",
              "lr = base_lr * (1 - step / total_steps) ** power", context)
    _passed(name)


# -- 08 baselines -----------------------------------------------------------------------------
def check_relative_cost(fn: Callable, *, seed: int | None = None) -> None:
    """Exercise 8.1: ``fn(costs, field, model, reference) -> costs[model][field] / ...``."""
    name = "relative_cost"
    rng, _, _ = _randomness(seed)
    models = ["refinenet", "dilated-os8", "fcn8s"]
    fields = ["gmacs", "latency_ms", "train_peak_mib"]
    costs = {m: {f: round(rng.uniform(1, 60), 1) for f in fields} for m in models}
    for field_, model, ref in [("latency_ms", "dilated-os8", "refinenet"),
                               ("train_peak_mib", "refinenet", "fcn8s"),
                               ("gmacs", "fcn8s", "dilated-os8")]:
        mine, theirs = costs[model][field_], costs[ref][field_]
        expected = mine / theirs
        context = f"{field_} of {model} relative to {ref}"
        got = _number(name, _call(name, fn, costs, field_, model, ref, context=context,
                                  hint="costs[model][field] / costs[reference][field]"))
        if abs(got - expected) <= 1e-9:
            continue
        for value, what, hint in [
            (1 / expected, "the ratio is upside down", "model's value / reference's value"),
            (mine - theirs, "it gives the difference, not the ratio", "divide: model / reference"),
            (100 * expected, "it gives a percentage", "return the plain ratio (2.0 means twice)"),
            (costs[model]["gmacs"] / costs[ref]["gmacs"], "it ignores its field argument",
             "costs[model][field]: the field is a parameter"),
        ]:
            if abs(got - value) <= 1e-9:
                _fail(name, what, hint, context)
        _fail(name, f"got {got}, expected {expected}",
              "costs[model][field] / costs[reference][field]", context)
    _passed(name)


# -- 09 ablations -----------------------------------------------------------------------------
def _measured_receptive_field(num_blocks: int) -> int:
    crp = blocks.ChainedResidualPooling(1, num_blocks)
    for c in crp.convs:
        nn.init.constant_(c.weight, 1.0)
    # a max pooling passes gradient to one pixel per window; an average pooling has the same
    # window and passes it to all, so the gradient's support is the receptive field
    crp.pool = lambda t: F.avg_pool2d(t, 5, 1, 2)
    x = torch.zeros(1, 1, 81, 81, requires_grad=True)
    crp(x + 1.0)[0, 0, 40, 40].backward()
    reach = torch.nonzero(x.grad[0, 0]).float()
    return int(reach[:, 0].max() - reach[:, 0].min()) + 1


def check_crp_receptive_field(fn: Callable, *, seed: int | None = None) -> None:
    """Exercise 9.1: ``fn(num_blocks) -> side of the receptive field of CRP's output``."""
    name = "crp_receptive_field"
    rng, _, _ = _randomness(seed)
    for n in (1, 2, 4, rng.randint(3, 6)):
        expected = _measured_receptive_field(n)
        got = _number(name, _call(name, fn, n, hint="return an int"))
        if got == expected:
            continue
        context = f"{n} block{'s' * (n > 1)}: you give {got:g}, measured {expected}"
        for value, what, hint in [
            (1 + 4 * n, "only the poolings widen it", "each 3x3 convolution adds 3 - 1 = 2 "
                                                      "pixels too"),
            (1 + 2 * n, "only the convolutions widen it", "each 5x5 pooling adds 5 - 1 = 4 "
                                                          "pixels too"),
            (6 * n, "the centre pixel is not counted", "a single pixel sees 1; each block "
                                                       "adds (5 - 1) + (3 - 1)"),
            (7, "it stays at one block's window, as if the blocks ran in parallel",
             "in a chain each block widens the window of the previous one"),
        ]:
            if got == value:
                _fail(name, what, hint, context)
        _fail(name, f"for {n} blocks you give {got:g}, measured {expected}",
              "each block adds a 5x5 pooling and a 3x3 convolution: (5 - 1) + (3 - 1) pixels",
              context)
    _passed(name)


# -- 10 deployment ----------------------------------------------------------------------------
def _conv_bn(gen: torch.Generator, c_in: int, c_out: int, bias: bool,
             **options: Any) -> tuple[nn.Conv2d, nn.BatchNorm2d]:
    conv, bn = nn.Conv2d(c_in, c_out, 3, bias=bias, **options), nn.BatchNorm2d(c_out)
    with torch.no_grad():
        for p in [*conv.parameters(), bn.weight, bn.bias, bn.running_mean]:
            p.copy_(torch.rand(p.shape, generator=gen) * 2 - 1)
        bn.weight.add_(1.5)
        bn.running_var.copy_(torch.rand(c_out, generator=gen) + 0.5)
    bn.eps = 0.1  # large, so that a fold without it is caught
    return conv, bn.eval()


def _tensors(*modules: nn.Module) -> list[torch.Tensor]:
    return [t for m in modules for t in m.state_dict().values()]


def _folded(x: torch.Tensor, weight: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor,
            options: dict[str, Any]) -> torch.Tensor:
    return F.conv2d(x, weight * scale[:, None, None, None], shift, **options)


def check_fuse_conv_bn(fn: Callable, *, seed: int | None = None) -> None:
    """Exercise 10.1: ``fn(conv, bn) -> one nn.Conv2d`` equal to bn(conv(x)) in eval mode, for a
    convolution without and with a bias."""
    name = "fuse_conv_bn"
    rng, gen, _ = _randomness(seed)
    for c_in, c_out, bias, options in [(4, 6, False, {"padding": 1}),
                                       (rng.randint(3, 6), rng.randint(2, 7), True,
                                        {"stride": 2, "padding": 2, "dilation": 2})]:
        conv, bn = _conv_bn(gen, c_in, c_out, bias, **options)
        conv.eval()  # folding is for inference (torch's fuse_conv_bn_eval insists)
        before = [t.clone() for t in _tensors(conv, bn)]
        settings = ", ".join(f"{k}={v}" for k, v in options.items())
        context = f"nn.Conv2d({c_in}, {c_out}, 3, {settings}, bias={bias})"
        fused = _call(name, fn, conv, bn, context=context,
                      hint="scale = bn.weight / torch.sqrt(bn.running_var + bn.eps) has one entry "
                           "per output channel: conv.weight * scale[:, None, None, None]")
        if not isinstance(fused, nn.Conv2d):
            _fail(name, f"it returns {type(fused).__name__}, not an nn.Conv2d",
                  "build a new nn.Conv2d with bias=True and copy the folded weight and bias "
                  "into it", context)
        if any(not torch.equal(a, b) for a, b in zip(before, _tensors(conv, bn))):
            _fail(name, "it changes the convolution or batch norm it was given",
                  "build a new nn.Conv2d (or a copy.deepcopy of conv) and fold into that", context)
        x = torch.randn(2, c_in, 9, 11, generator=gen)
        with torch.no_grad():
            expected = bn(conv(x))
            got = _call(name, fused, x, context=context, hint="keep the convolution's stride, "
                        "padding, dilation and groups")
        if got.shape != expected.shape:
            _fail(name, f"the fused convolution gives {tuple(got.shape)}, expected "
                        f"{tuple(expected.shape)}", "keep the original's stride, padding, "
                                                    "dilation and groups", context)
        if _close(got, expected):
            continue
        b = conv.bias if bias else torch.zeros(c_out)
        mean, var, gamma, beta = bn.running_mean, bn.running_var, bn.weight, bn.bias
        scale = gamma / torch.sqrt(var + bn.eps)
        folded = partial(_folded, x, conv.weight, options=options)
        with torch.no_grad():
            for value, what, hint in [
                (folded(scale, beta + b * scale), "the running mean is not subtracted",
                 "bias = beta + (conv.bias - running_mean) * scale"),
                (folded(scale, beta - mean * scale), "the convolution's own bias is lost",
                 "bias = beta + (conv.bias - running_mean) * scale"),
                (folded(gamma / torch.sqrt(var), beta + (b - mean) * gamma / torch.sqrt(var)),
                 "bn.eps is left out", "scale = gamma / sqrt(running_var + eps)"),
                (folded(gamma / (var + bn.eps), beta + (b - mean) * gamma / (var + bn.eps)),
                 "it divides by the variance, not the standard deviation",
                 "scale = gamma / sqrt(running_var + eps)"),
            ]:
                if _close(got, value):
                    _fail(name, what, hint, context)
        _fail(name, "the fused convolution does not equal conv then batch norm",
              "scale = bn.weight / sqrt(running_var + eps); weight = conv.weight * "
              "scale[:, None, None, None]; bias = bn.bias + (conv.bias - running_mean) * scale",
              context)
    _passed(name)
