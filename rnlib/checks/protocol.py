"""The protocol of the block exercises (3.1 RCU, 4.1 fusion, 5.1 pooling, 6.1 the RefineNet
block), :class:`BlockCheck`:

1. build the student's module and rnlib's on several constructor settings (odd, non-square
   sizes; the largest input not first; ``out_channels`` unlike every input width; block counts
   other than the defaults); refuse rnlib's own class, a subclass, or one that runs it;
2. run the student's module on its own copies of the inputs (scaled so that values pass 6; it
   never sees the reference's; changing an input tensor in place is reported, replacing entries
   of the input list is not), recording which convolutions it calls on which tensors;
3. match its convolutions to rnlib's by the tensors they see (channels and size, before any
   explicit padding) and, among equals, by the order of the calls: attribute names, the order
   of creation, and how a layer is applied (``conv(x)``, ``conv.forward(x)``,
   ``F.conv2d(x, conv.weight, ...)``) stay free; copy rnlib's weights into them;
4. compare the outputs, then again on inputs of other sizes, then the gradients.

Every phase catches errors, and known causes (read from the error and from what the recording
saw) become a specific message. A stub's NotImplementedError passes through untouched.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from . import causes
from .matching import compare_gradients, copy_weights, pair
from .recorder import Call, Recorder, by_signature, convs_called, record, signature
from .report import Explanation, fail, hw, passed
from .state import randomness
from .student import Watch, guard
from .tolerance import agrees

Mistakes = Iterator[tuple[torch.Tensor, str, str]]  # (what a mistake computes, what, hint)
INPUT_SCALE = 8.0  # inputs reach well past 6: a ReLU6 differs from a ReLU


@dataclass
class Setting:
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

    def which(self, i: int) -> str:
        return f"input path {i}" if self.as_list else "the input"


def _inputs(gen: torch.Generator, shapes: Sequence[tuple[int, ...]]) -> list[torch.Tensor]:
    return [torch.randn(shape, generator=gen) * INPUT_SCALE for shape in shapes]


def pyramid(rng: random.Random, levels: int) -> list[tuple[int, int]]:
    """Sizes as a ResNet gives them: odd, non-square, each about half the previous."""
    h, w = rng.randrange(11, 20, 2), rng.randrange(13, 24, 2)
    if h == w:
        w += 2
    sizes = [(h, w)]
    for _ in range(levels - 1):
        h, w = (h + 1) // 2, (w + 1) // 2
        sizes.append((h, w))
    return sizes


class BlockCheck:
    """The shared protocol (see the module docstring); subclasses give the settings, the
    reference, rnlib's classes that the solution may not use, and the causes to look for."""

    component: str
    signature: str
    library: tuple[type[nn.Module], ...] = ()
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
    mistaken: tuple[tuple[type[nn.Module], str, str], ...] = ()  # classic mistakes as modules

    def __init__(self, seed: int | None, allow_library: bool = False) -> None:
        self.rng, self.gen, self.seed = randomness(seed)
        self.watch = Watch(self.component, self.library, allow_library)

    # what each exercise gives
    def settings(self) -> list[Setting]:
        raise NotImplementedError

    def reference(self, setting: Setting, align_corners: bool) -> nn.Module:
        raise NotImplementedError

    def count_hint(self, setting: Setting) -> str:
        raise NotImplementedError

    def explain(self, calls: list[Call], setting: Setting, complete: bool) -> Explanation | None:
        return None

    def shape_mistake(self, out: torch.Tensor, expected: torch.Tensor,
                      setting: Setting) -> Explanation | None:
        return None

    def mistakes(self, ref: nn.Module, xs: list[torch.Tensor]) -> Mistakes:
        return iter(())

    # the protocol
    def run(self, cls: type[nn.Module]) -> None:
        self.watch.refuse_class(cls)
        notes: list[str] = []
        for setting in self.settings():
            notes += self._check(cls, setting)
        passed(self.component, notes)

    def _forward(self, student: nn.Module, s: Setting, xs: list[torch.Tensor],
                 context: str) -> Any:
        """The student's forward on copies of ``xs``, under the library watch."""
        with self.watch.student(), guard(self.component, "calling it", self.hint_error,
                                         context):
            return student(s.pack([x.clone() for x in xs]))

    def _check(self, cls: type[nn.Module], s: Setting) -> list[str]:
        """Build, run and record, match and copy weights, compare, then gradients."""
        name = getattr(cls, "__name__", self.component)
        context = s.describe(name)
        xs = _inputs(self.gen, s.shapes)
        refs = [self.reference(s, c) for c in self.conventions]
        ref_calls = convs_called(record(refs[0], s.pack(xs)))
        with self.watch.student(), guard(self.component, f"building it as {s.construction(name)}",
                                         f"its constructor must take the arguments of "
                                         f"{self.signature}", context):
            student = cls(*s.args, **s.kwargs)
        if not isinstance(student, nn.Module):
            fail(self.component, f"{type(student).__name__} is not an nn.Module",
                 "subclass nn.Module and call super().__init__() first in __init__", context)
        calls = self._first_run(student, s, xs, len(ref_calls), context)
        pairs = pair(self, student, calls, ref_calls, context)
        copy_weights(pairs)
        for other in refs[1:]:
            other.load_state_dict(refs[0].state_dict())
        match = self._compare(student, refs, calls, s, xs, context)
        self._again(student, refs[match], s, context)
        if match:  # pairs name refs[0]'s convolutions: take their twins in the matching one
            twins = dict(refs[match].named_modules())
            names = {m: n for n, m in refs[0].named_modules()}
            pairs = [(mine, twins[names[ref]]) for mine, ref in pairs]
        self._gradients(student, refs[match], pairs, s, xs, context)
        if self.conventions[match]:
            return []
        return ["it resizes with align_corners=False; the authors' code (and rnlib) use "
                "align_corners=True. Both are accepted."]

    def _first_run(self, student: nn.Module, s: Setting, xs: list[torch.Tensor],
                   expected_convs: int, context: str) -> list[Call]:
        """Run on copies of the inputs, recording calls; report changed inputs and the
        structure (layers, sizes, counts) before any weight is compared."""
        given = [x.clone() for x in xs]
        recorder = Recorder(student)

        def cause() -> Explanation | None:
            return (causes.structure(self, student, recorder.calls, expected_convs, s, False)
                    or self.explain(recorder.calls, s, False))

        with self.watch.student(), guard(self.component, "calling it", self.hint_error,
                                         context, cause):
            with recorder:
                student(s.pack(given))
        changed = [i for i, (g, x) in enumerate(zip(given, xs)) if not torch.equal(g, x)]
        if changed:
            which = f"the tensor of input path {changed[0]}" if s.as_list else "its input"
            lists = " (replacing entries of the list, xs[i] = ..., is fine)" if s.as_list else ""
            fail(self.component, f"it changes {which} in place{lists}", self.hint_inplace,
                 context)
        found = causes.structure(self, student, recorder.calls, expected_convs, s, True)
        if found:
            fail(self.component, *found, context)
        return recorder.calls

    def _compare(self, student: nn.Module, refs: list[nn.Module], calls: list[Call],
                 s: Setting, xs: list[torch.Tensor], context: str) -> int:
        """The index of the reference whose output the student's equals, or fail saying why."""
        out = self._forward(student, s, xs, context)
        if not isinstance(out, torch.Tensor):
            fail(self.component, f"forward returns {type(out).__name__}, not a tensor",
                 "end forward with return <the output tensor>", context)
        with torch.no_grad():
            expected = [ref(s.pack(xs)) for ref in refs]
        if out.shape != expected[0].shape:
            fail(self.component, *(self.explain(calls, s, True)
                                   or self.shape_mistake(out, expected[0], s)
                                   or (f"the output has shape {tuple(out.shape)}, expected "
                                       f"{tuple(expected[0].shape)}", self.hint_shape)), context)
        match = next((i for i, e in enumerate(expected) if agrees(out, e)), None)
        if match is None:
            fail(self.component, *(self.explain(calls, s, True) or causes.clamps(calls)
                                   or self._mistake(out, refs, xs, student, calls, s)
                                   or ("its output differs from rnlib's with the same weights",
                                       self.hint_output)), context)
        return match

    def _again(self, student: nn.Module, ref: nn.Module, s: Setting, context: str) -> None:
        """A second call, on inputs of other sizes: a size kept from the first call shows, and
        so does a rule that held on the first sizes by chance."""
        other = Setting(s.args, s.kwargs, [(n, c, h + 4, w + 6) for n, c, h, w in s.shapes],
                        s.as_list)
        xs, recorder = _inputs(self.gen, other.shapes), Recorder(student)
        with recorder:
            out = self._forward(student, other, xs, context)
        with torch.no_grad():
            expected = ref(other.pack(xs))
        if isinstance(out, torch.Tensor) and agrees(out, expected):
            return
        sizes = ", ".join(hw(x) for x in other.shapes)
        first = max((x[-2:] for x in s.shapes), key=lambda x: x[0] * x[1])
        if isinstance(out, torch.Tensor) and tuple(out.shape[-2:]) != tuple(first):
            fail(self.component, *(self.explain(recorder.calls, other, True)
                                   or (f"called again on inputs of other sizes ({sizes}), its "
                                       "output differs from rnlib's", self.hint_output)), context)
        fail(self.component, f"it is right on its first call, but a second call on inputs of "
                             f"other sizes ({sizes}) gives an output of the first call's size "
                             f"{hw(first)}: it keeps something from an earlier call",
             "compute sizes from the inputs in every call of forward; do not store them "
             "(nn.Upsample(size=...) fixes the size when it is created)", context)

    def _mistake(self, out: torch.Tensor, refs: list[nn.Module], xs: list[torch.Tensor],
                 student: nn.Module, calls: list[Call], s: Setting) -> Explanation | None:
        """A classic mistake that gives the student's output: computed with the reference's
        layers, or built as a mistaken module whose weights the student's then receive."""
        with torch.no_grad():
            for ref in refs:
                for alternative, what, hint in self.mistakes(ref, xs):
                    if agrees(out, alternative):
                        return what, hint
            for mistaken, what, hint in self.mistaken:
                model = mistaken(*s.args, **s.kwargs)
                mine, theirs = by_signature(calls), by_signature(record(model, s.pack(xs)))
                if list(map(signature, mine)) != list(map(signature, theirs)):
                    continue
                copy_weights([(m.module, t.module) for m, t in zip(mine, theirs)])
                if agrees(self._forward(student, s, xs, ""), model(s.pack(xs))):
                    return what, hint
        return None

    def _gradients(self, student: nn.Module, ref: nn.Module,
                   pairs: list[tuple[nn.Conv2d, nn.Conv2d]], s: Setting,
                   xs: list[torch.Tensor], context: str) -> None:
        mine = [x.clone().requires_grad_() for x in xs]
        theirs = [x.clone().requires_grad_() for x in xs]
        with self.watch.student(), guard(self.component, "calling it on inputs that require "
                                         "grad", self.hint_error, context):
            out = student(s.pack(mine))
        expected = ref(s.pack(theirs))
        weight = torch.randn(expected.shape, generator=self.gen)
        with guard(self.component, "backward", self.hint_error, context):
            (out * weight).sum().backward()
        (expected * weight).sum().backward()
        compare_gradients(self, student, pairs, mine, theirs, s.which, context)
