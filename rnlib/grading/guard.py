"""Inside the checking kernel: the grader's side, set up before any of the student's code runs.

:func:`install` imports the checkers, keeps its own reference to each exercise's checker and
records what the protected modules (rnlib, torch, numpy and Python's builtins, math, operator,
functools) hold: their functions and classes, the methods of those classes, and the code of
rnlib's functions. :func:`check` then, for one exercise, puts back anything the notebook has
changed there since, resets torch's global state (grad and inference mode, default dtype and
device, function and dispatch modes, global module hooks), runs the checker, and fails the
exercise if the student's code changed a protected module while it was being checked.
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, replace
from pathlib import Path
from types import FunctionType, ModuleType
from typing import Any

import torch
import torch.nn.modules.module as torch_module

from .. import backbones, checks, deploy, grade, optim  # noqa: F401  (before the student's code)
from ..models import refinenet  # noqa: F401  (the cascade's checker imports it)

_ROOTS = frozenset({"rnlib", "torch", "numpy", "builtins", "math", "operator", "functools"})
_OWN = __name__  # this module holds the grader's state: it is not restored
_IGNORED = frozenset({"__warningregistry__"})
_MISSING = object()
_HOOKS = ("_global_forward_hooks", "_global_forward_pre_hooks", "_global_backward_hooks",
          "_global_backward_pre_hooks", "_global_forward_hooks_always_called",
          "_global_forward_hooks_with_kwargs", "_global_module_registration_hooks",
          "_global_parameter_registration_hooks", "_global_buffer_registration_hooks")


def _watched(value: Any) -> bool:
    """What a checker calls: functions, classes and descriptors (not data or submodules)."""
    if isinstance(value, ModuleType):
        return False
    return callable(value) or isinstance(value, (staticmethod, classmethod, property))


class _Namespaces:
    """The protected modules' and classes' namespaces as they were, and what has changed."""

    def __init__(self) -> None:
        self.saved: list[tuple[str, Any, dict[str, Any], bool]] = []  # label, owner, copy, all
        self.code: list[tuple[FunctionType, tuple]] = []
        seen: set[int] = set()
        with warnings.catch_warnings():  # looking at deprecated aliases warns
            warnings.simplefilter("ignore")
            self._save_all(seen)

    def _save_all(self, seen: set[int]) -> None:
        for name, module in list(sys.modules.items()):
            root = name.split(".")[0]
            if not isinstance(module, ModuleType) or root not in _ROOTS or name == _OWN:
                continue
            everything = root == "rnlib"  # rnlib's data too (DEFAULT_SEED, EXERCISES' entries)
            self._save(name, module, everything, seen)
            for key, value in list(vars(module).items()):
                if isinstance(value, type):
                    self._save(f"{name}.{key}", value, everything, seen)

    def _save(self, label: str, owner: Any, everything: bool, seen: set[int]) -> None:
        if id(owner) in seen:
            return
        seen.add(id(owner))
        namespace = dict(vars(owner))
        self.saved.append((label, owner, namespace, everything))
        if everything:
            for value in namespace.values():
                fn = value.__func__ if isinstance(value, (staticmethod, classmethod)) else value
                while isinstance(fn, FunctionType):  # a decorated function, and what it wraps
                    self.code.append((fn, _code(fn)))
                    fn = getattr(fn, "__wrapped__", None)

    def changes(self) -> Iterator[tuple[str, Any, str, Any]]:
        """(label, owner, key, saved value or _MISSING) for each changed entry."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield from self._changes()

    def _changes(self) -> Iterator[tuple[str, Any, str, Any]]:
        for label, owner, saved, everything in self.saved:
            now = vars(owner)
            for key in saved.keys() | now.keys():
                old, new = saved.get(key, _MISSING), now.get(key, _MISSING)
                if old is new or key in _IGNORED or isinstance(new, ModuleType) and old is _MISSING:
                    continue
                if everything or _watched(old) or _watched(new):
                    yield label, owner, key, old
        for fn, code in self.code:
            if _code(fn) != code:
                yield f"{fn.__module__}.{fn.__qualname__}", fn, "__code__", code

    def restore(self) -> list[str]:
        """Put back every changed entry; the names of those that were changed."""
        names = []
        for label, owner, key, old in list(self.changes()):
            names.append(f"{label}.{key}" if key != "__code__" else label)
            if isinstance(owner, FunctionType):
                owner.__code__, owner.__defaults__, owner.__kwdefaults__ = old
                continue
            try:
                if isinstance(owner, ModuleType):  # its dict: also what was written into it
                    vars(owner).pop(key) if old is _MISSING else vars(owner).update({key: old})
                elif old is _MISSING:
                    delattr(owner, key)
                else:
                    setattr(owner, key, old)
            except (AttributeError, TypeError):  # a type that cannot be changed was not changed
                pass
        return names


def _code(fn: FunctionType) -> tuple:
    return fn.__code__, fn.__defaults__, fn.__kwdefaults__


_STATE: dict[str, Any] = {}


def install(results: str, seed: int | None) -> None:
    """Record the protected modules and the course's checkers before the student's code runs;
    each verdict is written to ``results``/<exercise>.json."""
    _STATE.update(exercises={e.id: replace(e) for e in grade.EXERCISES.values()},
                  registry=dict(grade.EXERCISES), grade=grade._grade, results=Path(results),
                  seed=seed, namespaces=_Namespaces())


def _restore() -> list[str]:
    """Put back the protected modules and the course's list of exercises; what had changed."""
    changed = _STATE["namespaces"].restore()
    if grade.EXERCISES != _STATE["registry"]:
        grade.EXERCISES.clear()
        grade.EXERCISES.update(_STATE["registry"])
        changed.append("rnlib.grade.EXERCISES")
    return changed


@contextmanager
def _clean_torch() -> Iterator[None]:
    """torch's global state as a fresh process has it, for the duration of one check."""
    modes = []
    while torch._C._len_torch_function_stack() > 0:
        modes.append(torch._C._pop_torch_function_stack())
    dispatch = []
    while torch._C._len_torch_dispatch_stack() > 0:
        dispatch.append(torch.utils._python_dispatch._pop_mode())
    hooks = {name: dict(getattr(torch_module, name)) for name in _HOOKS}
    for name in _HOOKS:
        getattr(torch_module, name).clear()
    grad, dtype = torch.is_grad_enabled(), torch.get_default_dtype()
    anomaly = torch.is_anomaly_enabled()
    torch.set_default_dtype(torch.float32)
    torch.autograd.set_detect_anomaly(False)
    try:
        with torch.inference_mode(False), torch.enable_grad():
            yield
    finally:
        torch.set_default_dtype(dtype)
        torch.set_grad_enabled(grad)
        torch.autograd.set_detect_anomaly(anomaly)
        for name, saved in hooks.items():
            getattr(torch_module, name).update(saved)
        for mode in reversed(modes):
            torch._C._push_on_torch_function_stack(mode)
        for mode in reversed(dispatch):
            torch.utils._python_dispatch._push_mode(mode)


def _leftovers() -> list[str]:
    """torch state that a check must leave as it found it: modes and global hooks."""
    found = []
    if torch._C._len_torch_function_stack() or torch._C._len_torch_dispatch_stack():
        found.append("a torch function or dispatch mode")
    found += [f"torch.nn.modules.module.{n}" for n in _HOOKS if getattr(torch_module, n)]
    return found


def check(exercise_id: str, namespace: Mapping[str, Any]) -> None:
    """Check one exercise on the objects in ``namespace`` and write its verdict."""
    exercise = _STATE["exercises"][exercise_id]  # the copy made before the student's code
    _restore()
    with _clean_torch():
        result = _STATE["grade"](exercise, namespace, _STATE["seed"])
        changed = _leftovers()
    changed += _restore()
    if changed:
        result = replace(result, status=grade.FAILED, message=(
            f"{exercise.name} changed {', '.join(sorted(changed)[:3])} while it was checked: "
            "the grader cannot trust its verdict. Hint: an exercise computes its result; it "
            "does not change rnlib, torch or Python's own functions."))
    path = _STATE["results"] / f"{exercise_id}.json"
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(asdict(result)))
    os.replace(partial, path)
