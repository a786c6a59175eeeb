"""Turning torch's export errors into a sentence: which operator or line, and what to do.

This reads torch's own error text and logs ("Constraints violated", "[guard added]", "No ONNX
function found", ...), which are not an API and change between releases. It was written for,
and is tested on, torch :data:`WRITTEN_FOR`; with any other torch every error keeps torch's
own message (its first line, the full one chained as ``__cause__``).
"""

from __future__ import annotations

import contextlib
import linecache
import logging
import re
import sys
import traceback
import warnings
from pathlib import Path

import torch
from torch import nn

from .formats import ExportError, dynamic_shapes

WRITTEN_FOR = "2.14"  # the torch release (major.minor) whose error text this module reads
TORCH_VERSION = torch.__version__
_TORCH_DIR = str(Path(torch.__file__).parent)
_THIS_PACKAGE = Path(__file__).parent  # rnlib/export: its frames are not the user's


def _reads_this_torch() -> bool:
    return TORCH_VERSION.split("+")[0].split(".")[:2] == WRITTEN_FOR.split(".")


def _torch_own(what: str, err: Exception) -> ExportError:
    """torch's own message, for a torch whose error text this module does not know."""
    return ExportError(f"{what} failed: {_first_line(err)} (torch {TORCH_VERSION}'s own "
                       f"message: rnlib explains the errors of torch {WRITTEN_FOR} only)")


def is_min_size_violation(err: Exception) -> bool:
    """Whether torch.export refused the smallest sizes only (a larger minimum may export)."""
    text = str(err)
    return (_reads_this_torch() and "Constraints violated" in text
            and "Not all values of" in text and "specialized it to be a constant" not in text)


def _chain(err: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    while err is not None and err not in seen:
        seen.append(err)
        err = err.__cause__ or err.__context__
    return seen


def _user_frame(err: BaseException) -> str | None:
    """The last line outside torch (and this package) in the exception's traceback."""
    for e in reversed(_chain(err)):
        frames = [f for f in traceback.extract_tb(e.__traceback__)
                  if not f.filename.startswith(_TORCH_DIR)
                  and Path(f.filename).parent != _THIS_PACKAGE
                  and "site-packages" not in f.filename]
        if frames:
            f = frames[-1]
            return f"{_short(f.filename)}:{f.lineno} in {f.name}: `{(f.line or '').strip()}`"
    return None


def _short(filename: str) -> str:
    try:
        return str(Path(filename).resolve().relative_to(Path.cwd()))
    except ValueError:
        return filename


def explain_trace_error(err: Exception, model: nn.Module, example: torch.Tensor, side: int,
                         name: str, too_small: bool) -> ExportError:
    from torch.fx.experimental.symbolic_shapes import GuardOnDataDependentSymNode

    if not _reads_this_torch():
        return _torch_own(f"torch.export of {name}", err)
    text = str(err)
    if any(isinstance(e, GuardOnDataDependentSymNode) for e in _chain(err)):
        where = _call_site(text) or _user_frame(err) or "its forward"
        return ExportError(
            f"torch.export cannot export {name}: it reads a tensor's value in Python "
            f"(aten.item: an `if`, bool(), int() or .item() on a tensor) at {where}. An exported "
            f"program is one graph for every input, so it cannot branch on data: compute both "
            f"branches and choose with torch.where, or use torch.cond. ONNX export starts from "
            f"torch.export, so --format onnx fails at the same place.")
    if "specialized it to be a constant" in text or (
            "Constraints violated" in text and not too_small):
        places = _guard_sites(model, example, side,
                              specialized="specialized it to be a constant" in text)
        where = "; ".join(places) if places else "a line that TORCH_LOGS=+dynamic shows"
        return ExportError(
            f"torch.export cannot keep the height and width of {name} dynamic: the model turns "
            f"an input size into a fixed number or a condition on it (int() of a size, or a "
            f"Python comparison of sizes) at {where}. Keep sizes symbolic there: pass "
            f"x.shape[-2:] on without int(), and compare sizes with torch.fx.experimental."
            f"symbolic_shapes.statically_known_true. Both formats need this.")
    if too_small:
        guards = re.findall(r"satisfy the generated guard (.+?)\.\n", text + "\n")
        return ExportError(
            f"torch.export cannot export {name} for every height and width >= {side}: it "
            f"needs larger inputs ({'; '.join(guards[:2]) or text.splitlines()[0]}). Pass a "
            f"larger min_side (--min-side).")
    func = next((getattr(e, "func", None) for e in _chain(err)
                 if getattr(e, "func", None) is not None), None)
    where = _user_frame(err)
    what = f"the operator {func}" if func is not None else f"{type(err).__name__}"
    first = text.strip().splitlines()[0] if text.strip() else ""
    return ExportError(
        f"torch.export cannot export {name}: {what} failed"
        f"{f' at {where}' if where else ''} ({first}). Neither format can hold what cannot be "
        f"traced: replace that operation, or run the model eagerly.")


def _call_site(text: str) -> str | None:
    """The 'File ..., line N, in f / code' that torch's data-dependent error quotes."""
    m = re.search(r'File "([^"]+)", line (\d+), in (\S+)\n\s*(.+)', text)
    if m is None:
        return None
    return f"{_short(m.group(1))}:{m.group(2)} in {m.group(3)}: `{m.group(4).strip()}`"


@contextlib.contextmanager
def shape_log(level: int, records: list[str] | None = None):
    """Set the level of torch's shape log for a while, its messages kept in ``records`` (not
    shown): at ERROR it stops the warnings a failing export prints before its exception."""

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if records is not None:
                records.append(record.getMessage())

    log = logging.getLogger("torch.fx.experimental.symbolic_shapes")
    saved = log.handlers, log.level, log.propagate
    log.handlers, log.propagate = [Collect()], False
    log.setLevel(level)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        log.handlers, log.propagate = saved[0], saved[2]
        log.setLevel(saved[1])


def _guard_sites(model: nn.Module, example: torch.Tensor, side: int,
                 specialized: bool) -> list[str]:
    """Where the guards that break dynamic shapes come from: the export runs again with
    torch's shape log on, which names the user's line of each guard it adds. With
    ``specialized``, only guards that fix a size to a number (``Eq(s0, 128)``). Best effort."""
    records: list[str] = []
    with shape_log(logging.INFO, records):
        try:
            torch.export.export(model, (example,), dynamic_shapes=dynamic_shapes(side))
        except Exception:  # noqa: BLE001 -- the failure is the point; its log is what we want
            pass
    sites: list[str] = []
    for message in records:
        m = re.match(r"eval (.+) \[guard added\] \((\S+):(\d+) in ([^)]+)\)", message)
        if m is None:
            continue
        expr, filename, line, function = m.groups()
        fixes_a_size = re.fullmatch(r"Eq\(.+, \d+\)", expr) is not None
        never_one = re.fullmatch(r"Ne\(.+, 1\)", expr) is not None  # torch's own size-1 checks
        if (fixes_a_size if specialized else not (fixes_a_size or never_one)):
            path = _resolve(filename)
            code = linecache.getline(str(path), int(line)).strip() if path else ""
            site = (f"{_short(str(path)) if path else filename}:{line} in {function}"
                    + (f": `{code}`" if code else ""))
            if site not in sites:
                sites.append(site)
    return sites[:3]


def _is_size_arithmetic(op: str) -> bool:
    """Python functions on sizes (round, math.ceil) rather than tensor operators."""
    return op.startswith(("builtins.", "math.", "_operator.", "operator."))


def _op_advice(op: str, other: str) -> str:
    if _is_size_arithmetic(op):
        return ("It is Python arithmetic on a size, which neither format can store: compute "
                "the size with integers (+, *, //), e.g. round(s * 0.6) as (3 * s + 2) // 5.")
    return (f"Export to {other} instead (--format {other.lstrip('.')}), or replace "
            f"{op.split('.')[-1]} in the model by other operators.")


def _resolve(filename: str) -> Path | None:
    """The file behind a name from torch's log, which cuts paths at their common prefix with
    torch's site-packages (so ``/work/rnlib/blocks.py`` is ``rnlib/blocks.py``)."""
    if Path(filename).is_absolute() and Path(filename).is_file():
        return Path(filename)
    files = [Path(module.__file__) for module in list(sys.modules.values())
             if isinstance(getattr(module, "__file__", None), str)
             and module.__file__.endswith(filename)]
    return min(files, key=lambda f: len(str(f)), default=None)


def explain_onnx_error(err: Exception, program: torch.export.ExportedProgram,
                        name: str) -> ExportError:
    if not _reads_this_torch():
        return _torch_own(f"ONNX export of {name}", err)
    text = "\n".join(str(e) for e in _chain(err))
    m = re.search(r"No ONNX function found for (?:<OpOverload\(op='([^']+)'|<built-in function "
                  r"(\w+)>)", text)
    if m is not None:
        op = m.group(1) or f"builtins.{m.group(2)}"
        where = _node_site(program, lambda node: _op_name(node.target) == op)
        return ExportError(
            f"ONNX export of {name} failed: ONNX has no translation for the operator {op}"
            f"{f' (at {where})' if where else ''}. {_op_advice(op, '.pt2')}")
    m = re.search(r"Error when translating node %(\S+)", text)
    what = f"the node {m.group(1)}" if m else type(err).__name__
    return ExportError(f"ONNX export of {name} failed at {what} "
                       f"({_first_line(err)}). Export to .pt2 instead (--format pt2).")


def explain_save_error(err: Exception, program: torch.export.ExportedProgram,
                        name: str) -> ExportError:
    if not _reads_this_torch():
        return _torch_own(f"torch.export.save of {name}", err)
    m = re.search(r"Failed serializing node (\S+) in graph", str(err))
    node = next((n for n in program.graph.nodes if m and n.name == m.group(1)), None)
    if node is None:
        return ExportError(f"torch.export.save cannot store {name} ({_first_line(err)}). "
                           f"Export to ONNX instead (--format onnx).")
    op = _op_name(node.target)
    where = _node_site(program, lambda n: n is node)
    return ExportError(
        f"torch.export.save cannot store {name}: its program uses {op}"
        f"{f' (at {where})' if where else ''}, which the .pt2 format has no entry for. "
        f"{_op_advice(op, '.onnx')}")


def _op_name(target) -> str:
    """'aten.cummax' for torch.ops.aten.cummax.default, 'builtins.round' for round."""
    text = str(target)
    m = re.fullmatch(r"<built-in function (\w+)>", text)
    return f"builtins.{m.group(1)}" if m else text.removesuffix(".default")


def _first_line(err: BaseException) -> str:
    lines = re.sub(r"\x1b\[[0-9;]*m", "", str(err)).strip().splitlines()
    return lines[0] if lines else type(err).__name__


def _node_site(program: torch.export.ExportedProgram, match) -> str | None:
    """The source line of the first graph node for which ``match(node)`` holds."""
    for node in program.graph.nodes:
        if node.op == "call_function" and match(node):
            frames = re.findall(r'File "([^"]+)", line (\d+), in (\S+)\n\s*(.+)',
                                node.meta.get("stack_trace") or "")
            if frames:
                f, line, fn, code = frames[-1]
                return f"{_short(f)}:{line} in {fn}: `{code.strip()}`"
    return None
