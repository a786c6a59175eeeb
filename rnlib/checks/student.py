"""Running the student's code: errors it raises become messages that say what they mean, and a
watch notices when it runs the library's implementation of the exercise instead of its own."""

from __future__ import annotations

import inspect
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from types import CodeType, FrameType, ModuleType
from typing import Any

from .report import ExerciseError, Explanation, UsesLibraryError, error

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
def guard(component: str, action: str, hint: str, context: str | None = None,
          explain: Callable[[], Explanation | None] | None = None) -> Iterator[None]:
    """Turn an error of the student's code into an ExerciseError: first the cause that
    ``explain`` finds, then a known error, else the error itself with ``hint``. A stub's
    NotImplementedError passes through untouched."""
    try:
        yield
    except (NotImplementedError, ExerciseError):
        raise
    except Exception as err:
        what, why = ((explain and explain()) or _known(err, hint)
                     or (f"{action} raised {type(err).__name__}: {err}", hint))
        raise error(component, what, why, context) from err


def _codes(owner: ModuleType | type) -> dict[CodeType, str]:
    """The code of every function of a module (its classes' methods included) or of a class,
    by its qualified name."""
    found: dict[CodeType, str] = {}
    for value in vars(owner).values():
        if isinstance(value, (staticmethod, classmethod)):
            value = value.__func__
        if isinstance(value, property):
            value = value.fget
        home = owner.__name__ if isinstance(owner, ModuleType) else owner.__module__
        if getattr(value, "__module__", None) != home:
            continue
        if inspect.isclass(value):
            found |= _codes(value)
        elif inspect.isfunction(value):
            found[value.__code__] = f"{home}.{value.__code__.co_qualname}"
    return found


class Watch:
    """Notices the student's code running the library's implementation of the exercise: the
    functions of ``owners`` (modules or classes), and classes that are or subclass them.
    ``allowed`` turns it off, for the library's own tests of its classes."""

    def __init__(self, component: str, owners: Sequence[ModuleType | type] = (),
                 allowed: bool = False) -> None:
        self.component = component
        owners = () if allowed else owners
        self.classes = tuple(o for o in owners if inspect.isclass(o))
        self.codes: dict[CodeType, str] = {}
        for owner in owners:
            self.codes |= _codes(owner)
        self.used: str | None = None

    def _error(self, name: str, how: str) -> UsesLibraryError:
        whose = "rnlib's" if name.startswith("rnlib") else "torch's"
        return error(self.component, f"it uses {whose} implementation ({name}){how}",
                     "the exercise is to write it yourself: compute it with torch's basic "
                     "operations and layers, not with the library's version",
                     kind=UsesLibraryError)

    def refuse_class(self, cls: Any) -> None:
        """Fail when ``cls`` is, or subclasses, one of the library's classes."""
        for owner in self.classes:
            if inspect.isclass(cls) and issubclass(cls, owner):
                raise self._error(f"{owner.__module__}.{owner.__qualname__}",
                                  ": it is that class or a subclass of it")

    def _profile(self, frame: FrameType, event: str, arg: Any) -> None:
        if event == "call" and frame.f_code in self.codes:
            self.used = self.codes[frame.f_code]

    @contextmanager
    def student(self) -> Iterator[None]:
        """Run the student's code under the watch; fail afterwards if it used the library."""
        if not self.codes:
            yield
            return
        previous = sys.getprofile()
        sys.setprofile(self._profile)
        try:
            yield
        finally:
            sys.setprofile(previous)
            if self.used:
                raise self._error(self.used, " instead of its own")


def call(watch: Watch, fn: Callable, *args: Any, hint: str, context: str | None = None,
         explain: Callable[[], Explanation | None] | None = None) -> Any:
    """``fn(*args)``, the student's function, under the watch and the guard."""
    with watch.student(), guard(watch.component, "calling it", hint, context, explain):
        return fn(*args)
