"""Deployment files: a model as a ``torch.export`` program (``.pt2``) or an ONNX graph
(``.onnx``), with dynamic batch, height and width, checked against the eager model.

    export_model(model, "lw.onnx", fmt="onnx")       # or fmt="pt2"; fold_bn=True folds BN first
    verify_export("lw.onnx", model)                  # largest |file - eager| at two sizes
    rnlib export runs/a/last.pt --format onnx        # the same from a checkpoint

Both formats start from one ``torch.export.export`` of the model in eval mode (non-strict):
the graph of ATen operators that ``forward`` runs, with the batch, the height and the width as
symbols instead of numbers. ``.pt2`` saves that program (``torch.export.save``; load it with
``torch.export.load(path).module()``, no rnlib needed); ``.onnx`` translates it to ONNX opset
:data:`ONNX_OPSET` (``torch.onnx.export(..., dynamo=True)``, which needs ``onnx`` and
``onnxscript``; running it needs ``onnxruntime``).

What the exported file accepts:

- float32 images (N, C, H, W), contiguous NCHW, on the CPU (a channels_last or CUDA model is
  copied to the CPU in contiguous format first; the model itself is not changed);
- any batch size and any H, W >= ``min_side``, odd sizes and sizes that are not multiples of 32
  included. ``min_side`` is 33 for rnlib's models: torch.export assumes that a dynamic size is
  never 1, and from 33 up the 1/32 feature map is at least 2x2 (below it the .pt2 program
  refuses the input; ONNX Runtime does not check, and gave the eager logits down to 1x1 for
  LW-RefineNet, but nothing promises it). A model that needs more (the 2-scale
  RefineNet runs a backbone at 0.6x: 55 or more) gets the minimum raised to 65 or 129 by
  :func:`export_model`, which returns it. The minimum is stored in the file.

Every resize in rnlib sizes its output from the input's symbolic shape, so one file serves
every size, and it computes what the eager model computes: the .pt2 program gives the eager
NCHW model's logits bit for bit; ONNX Runtime, a channels_last eager model or folded batch
norm differ by float32 rounding, 1e-6 to 4e-6 of the logits' scale (:data:`TOLERANCE` 1e-4).
A model that cannot be exported raises :class:`ExportError`, naming the operator or the line
and what to do.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import importlib.util
import io
import json
import linecache
import logging
import re
import sys
import time
import traceback
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import torch
from torch import nn

from .deploy import fuse_batchnorm

__all__ = ["FORMATS", "MIN_SIDE", "ONNX_OPSET", "TOLERANCE", "VERIFY_SIZES", "ExportError",
           "ExportedFile", "Difference", "ExportReport", "missing_onnx_packages", "export_model",
           "verify_export", "export_checkpoint", "add_export_command"]

FORMATS = ("pt2", "onnx")
MIN_SIDE = 33  # smallest dynamic H, W: the 1/32 feature map must be at least 2x2 (see above)
ONNX_OPSET = 18  # the opset torch's ONNX translations are written for; ONNX Runtime >= 1.14
TOLERANCE = 1e-4  # largest |file - eager| accepted, relative to the largest |eager logit|
VERIFY_SIZES = ((96, 128), (113, 161))  # two sizes, different in both sides, one odd
EXAMPLE_SIZE = (128, 160)  # the traced example; any size >= min_side gives the same program
_METADATA = "rnlib.json"  # where the file keeps what rnlib knows about it (min_side, model)
_ONNX_PACKAGES = ("onnx", "onnxscript", "onnxruntime")


class ExportError(ValueError):
    """A model that cannot be exported, with the operator or line at fault and what to do."""


@dataclass
class ExportedFile:
    """What :func:`export_model` wrote: the file, its format and the smallest H, W it takes."""

    path: Path
    fmt: str
    min_side: int
    seconds: float

    @property
    def bytes(self) -> int:
        return self.path.stat().st_size


class Difference(NamedTuple):
    """The largest |file - eager| over one random batch of ``size`` (H, W), and the eager
    logits' largest magnitude ``scale``, by which to judge it."""

    size: tuple[int, int]
    max_abs_diff: float
    scale: float

    @property
    def relative(self) -> float:
        return self.max_abs_diff / max(self.scale, 1e-12)

    @property
    def ok(self) -> bool:
        return self.relative <= TOLERANCE


@dataclass
class ExportReport:
    """What ``rnlib export`` did: the file, how it was made, and the check against eager."""

    exported: ExportedFile
    model: str
    fold_bn: bool
    differences: list[Difference] = field(default_factory=list)
    tolerance: float = TOLERANCE

    @property
    def ok(self) -> bool:
        return all(d.relative <= self.tolerance for d in self.differences)

    def summary(self) -> str:
        e = self.exported
        lines = [f"wrote {e.path} ({e.fmt}, {e.bytes / 2**20:.1f} MiB) from {self.model}"
                 f"{' with batch norm folded' if self.fold_bn else ''} in {e.seconds:.1f} s; "
                 f"dynamic batch, height and width (H, W >= {e.min_side})"]
        for d in self.differences:
            verdict = "ok" if d.relative <= self.tolerance else f"ABOVE {self.tolerance:g}"
            lines.append(f"  {d.size[0]}x{d.size[1]}: largest |{e.fmt} - eager| = "
                         f"{d.max_abs_diff:.2e} (logits up to {d.scale:.2f}; relative "
                         f"{d.relative:.1e}, {verdict})")
        return "\n".join(lines)


def missing_onnx_packages() -> list[str]:
    """The packages ONNX export and verification need that are not installed."""
    return [name for name in _ONNX_PACKAGES if importlib.util.find_spec(name) is None]


def _need_onnx() -> None:
    missing = missing_onnx_packages()
    if missing:
        raise ExportError(f"ONNX export needs {', '.join(missing)}, which "
                          f"{'is' if len(missing) == 1 else 'are'} not installed: "
                          f"pip install 'rnlib[export]' (or pip install {' '.join(missing)}); "
                          f"or export with --format pt2, which needs nothing more")


def _format(fmt: str | None, path: Path | None = None) -> str:
    fmt = fmt or (path.suffix.lstrip(".").lower() if path is not None else "")
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    return fmt


def export_model(model: nn.Module, path: str | Path, *, fmt: str | None = None,
                 example_size: Sequence[int] = EXAMPLE_SIZE, fold_bn: bool = False,
                 min_side: int | None = None, opset: int = ONNX_OPSET,
                 name: str | None = None) -> ExportedFile:
    """Export ``model`` in eval mode to ``path`` as ``fmt`` ("pt2" or "onnx"; default: the
    suffix of ``path``), with dynamic batch, height and width.

    ``fold_bn`` folds every batch norm into its convolution first
    (:func:`rnlib.deploy.fuse_batchnorm`). ``min_side`` is the smallest H and W the file will
    take; by default 33, raised to 65 or 129 when the model needs it. ``model`` is not
    changed: a CPU copy in contiguous memory format is exported. Raises :class:`ExportError`
    naming the operator or line that cannot be exported, and what to do.
    """
    path = Path(path)
    fmt = _format(fmt, path)
    if fmt == "onnx":
        _need_onnx()
    name = name or type(model).__name__
    started = time.perf_counter()
    model = fuse_batchnorm(model) if fold_bn else copy.deepcopy(model).eval()
    model = model.cpu().to(memory_format=torch.contiguous_format)
    program, min_side = _trace(model, example_size, min_side, name)
    metadata = json.dumps({"min_side": min_side, "model": name, "fold_bn": fold_bn,
                           "torch": torch.__version__})
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "pt2":
        try:
            torch.export.save(program, path, extra_files={_METADATA: metadata})
        except Exception as err:  # noqa: BLE001
            path.unlink(missing_ok=True)
            raise _explain_save_error(err, program, name) from err
    else:
        onnx_program = _to_onnx(program, opset, min_side, name)
        onnx_program.model.metadata_props[_METADATA] = metadata
        onnx_program.save(path)
    return ExportedFile(path, fmt, min_side, time.perf_counter() - started)


def _dynamic_shapes(min_side: int) -> tuple[dict[int, torch.export.Dim]]:
    """Batch, height and width as symbols; the model's only input is the image batch."""
    return ({0: torch.export.Dim("batch", min=1), 2: torch.export.Dim("height", min=min_side),
             3: torch.export.Dim("width", min=min_side)},)


def _trace(model: nn.Module, example_size: Sequence[int], min_side: int | None,
           name: str) -> tuple[torch.export.ExportedProgram, int]:
    """``torch.export.export`` with dynamic shapes; when ``min_side`` is not given, retry
    with larger minimums while torch.export says some small sizes do not fit the model."""
    sides = [min_side] if min_side is not None else [MIN_SIDE, 2 * MIN_SIDE - 1, 4 * MIN_SIDE - 3]
    for i, side in enumerate(sides):
        # batch 2: an example dimension of size 1 would be fixed to 1 (torch.export's rule)
        h, w = (max(s, side) for s in example_size)
        example = torch.randn(2, getattr(model, "in_channels", 3), h, w)
        printed = io.StringIO()  # torch prints a failed trace's partial graph to stderr
        try:
            with _shape_log(logging.ERROR), contextlib.redirect_stderr(printed):
                program = torch.export.export(model, (example,), strict=False,
                                              dynamic_shapes=_dynamic_shapes(side))
            sys.stderr.write(printed.getvalue())
            return program, side
        except Exception as err:  # noqa: BLE001 -- every failure becomes an ExportError
            too_small = _is_min_size_violation(err)
            if too_small and i + 1 < len(sides):
                continue
            raise _explain_trace_error(err, model, example, side, name, too_small) from err
    raise AssertionError("unreachable")


def _is_min_size_violation(err: Exception) -> bool:
    text = str(err)
    return ("Constraints violated" in text and "Not all values of" in text
            and "specialized it to be a constant" not in text)


def _to_onnx(program: torch.export.ExportedProgram, opset: int, min_side: int, name: str):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's notes on its own internals
        try:
            return torch.onnx.export(program, dynamo=True, opset_version=opset,
                                     dynamic_shapes=_dynamic_shapes(min_side),  # names the dims
                                     input_names=["image"], output_names=["logits"],
                                     verbose=False)
        except Exception as err:  # noqa: BLE001
            raise _explain_onnx_error(err, program, name) from err


# ---------------------------------------------------------------------------------------------
# Checking a file against the eager model


def _read_metadata(path: Path, fmt: str) -> dict:
    if fmt == "pt2":
        extra = {_METADATA: ""}
        program = torch.export.load(path, extra_files=extra)
        return {**json.loads(extra[_METADATA] or "{}"), "program": program}
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map.get(_METADATA, "{}")
    return {**json.loads(meta), "session": session}


def _check_sizes(sizes: Sequence[Sequence[int]], min_side: int, what: str) -> None:
    small = [f"{h}x{w}" for h, w in sizes if min(h, w) < min_side]
    if small:
        raise ExportError(f"{what} takes heights and widths >= {min_side}, and "
                          f"{', '.join(small)} is smaller; verify at larger sizes")


def verify_export(path: str | Path, model: nn.Module,
                  sizes: Sequence[Sequence[int]] = VERIFY_SIZES, *, seed: int = 0,
                  batch: int = 1) -> list[Difference]:
    """Run random images of each size (H, W) through the file and through ``model`` (eager,
    eval mode); per size, the largest absolute difference and the eager logits' scale.

    ``.pt2`` runs with ``torch.export.load(path).module()``, ``.onnx`` with ONNX Runtime on
    the CPU. Inputs are contiguous NCHW float32 from ``torch.randn`` seeded with ``seed``.
    """
    path = Path(path)
    fmt = _format(None, path)
    if fmt == "onnx":
        _need_onnx()
    if not path.exists():
        raise FileNotFoundError(f"no exported file at {path}; export it first")
    meta = _read_metadata(path, fmt)
    min_side = meta.get("min_side", 1)
    _check_sizes(sizes, min_side, path.name)
    if fmt == "pt2":
        run = meta["program"].module()
    else:
        session = meta["session"]
        input_name = session.get_inputs()[0].name

        def run(x: torch.Tensor) -> torch.Tensor:
            return torch.from_numpy(session.run(None, {input_name: x.numpy()})[0])

    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    generator = torch.Generator().manual_seed(seed)
    was_training = model.training
    model.eval()
    differences = []
    try:
        with torch.no_grad():
            for h, w in sizes:
                x = torch.randn(batch, getattr(model, "in_channels", 3), h, w,
                                generator=generator)
                expected = model(x.to(device)).float().cpu()  # (N, K, H, W)
                got = run(x)
                if got.shape != expected.shape:
                    raise ExportError(f"{path.name} gives logits of shape {tuple(got.shape)} "
                                      f"for a {h}x{w} input, the model {tuple(expected.shape)}")
                differences.append(Difference((h, w), (got - expected).abs().max().item(),
                                              expected.abs().max().item()))
    finally:
        model.train(was_training)
    return differences


# ---------------------------------------------------------------------------------------------
# From a checkpoint, and the command line


def export_checkpoint(checkpoint: str | Path, out: str | Path | None = None, *,
                      fmt: str = "pt2", fold_bn: bool = False,
                      sizes: Sequence[Sequence[int]] = VERIFY_SIZES,
                      min_side: int | None = None, tolerance: float = TOLERANCE,
                      amp: str = "off") -> ExportReport:
    """Export the model of a checkpoint written by the Trainer (next to it, with the suffix
    of ``fmt``, unless ``out`` is given) and verify it at ``sizes``. ``amp`` ("on", "bf16";
    :func:`rnlib.runtime.amp_dtype` on the CPU) stores a .pt2 program that computes in
    bfloat16 and is verified against the eager model under the same autocast."""
    from .runs import load_trained
    from .runtime import Autocast, amp_dtype

    checkpoint = Path(checkpoint)
    fmt = _format(fmt)
    sizes = [tuple(s) for s in sizes]
    _check_sizes(sizes, min_side or MIN_SIDE, "an exported model")  # before minutes of export
    dtype = amp_dtype(amp, torch.device("cpu"))  # exported files run on the CPU
    if dtype is not None and fmt == "onnx":
        raise ExportError("ONNX Runtime has no bfloat16 convolutions on the CPU; export with "
                          "--amp as --format pt2, or to ONNX without --amp")
    model, config = load_trained(checkpoint)
    out = Path(out) if out is not None else checkpoint.with_suffix(f".{fmt}")
    name = f"{config.model} ({config.backbone}, {config.num_classes} classes)"
    if dtype is not None:
        model, name = Autocast(model, dtype), f"{name} in {str(dtype).removeprefix('torch.')}"
    exported = export_model(model, out, fmt=fmt, fold_bn=fold_bn, min_side=min_side, name=name)
    differences = verify_export(out, model, sizes)
    return ExportReport(exported, name, fold_bn, differences, tolerance)


def _run_export_command(args: argparse.Namespace) -> None:
    report = export_checkpoint(args.checkpoint, args.out, fmt=args.format, fold_bn=args.fold_bn,
                               sizes=args.size or VERIFY_SIZES, min_side=args.min_side,
                               tolerance=args.tolerance, amp=args.amp or "off")
    print(report.summary())
    if not report.ok:
        raise ExportError(f"{report.exported.path} differs from the eager model by more than "
                          f"{report.tolerance:g} of the logits' scale (see above); do not deploy "
                          f"it as is: try the other --format, or export without --fold-bn")


def add_export_command(subparsers) -> argparse.ArgumentParser:
    """Register ``rnlib export CHECKPOINT --format onnx|pt2 [--fold-bn] [--out PATH]
    [--size H W]...`` on an argparse sub-parsers object; returns its parser."""
    p = subparsers.add_parser(
        "export", help="write a checkpoint as a .pt2 (torch.export) or .onnx file, dynamic "
                       "in batch, height and width, checked against the eager model",
        description="Export a checkpoint's model and check the file against the eager model "
                    "on random images of two sizes, printing the largest difference.")
    p.add_argument("checkpoint", help="a last.pt written by rnlib train")
    p.add_argument("--format", required=True, choices=FORMATS,
                   help="pt2: torch.export program (torch.export.load); onnx: ONNX opset "
                        f"{ONNX_OPSET} (needs onnx, onnxscript, onnxruntime)")
    p.add_argument("--fold-bn", action="store_true",
                   help="fold batch norm into the convolutions before exporting")
    p.add_argument("--out", help="the file to write (default: next to the checkpoint, "
                                 "with suffix .pt2 or .onnx)")
    p.add_argument("--size", type=int, nargs=2, action="append", metavar=("H", "W"),
                   help=f"a verification size, repeatable (default: "
                        f"{' and '.join(f'{h} {w}' for h, w in VERIFY_SIZES)})")
    p.add_argument("--min-side", type=int, metavar="N",
                   help=f"smallest height and width the file accepts (default: {MIN_SIDE}, "
                        f"raised when the model needs more)")
    p.add_argument("--amp", nargs="?", const="on", choices=("on", "bf16", "off"),
                   help="--amp alone: a .pt2 program that computes in bfloat16, on a CPU that "
                        "computes it natively")
    p.add_argument("--tolerance", type=float, default=TOLERANCE,
                   help="largest accepted difference, relative to the largest eager logit "
                        "(default: %(default)g)")
    p.set_defaults(run=_run_export_command)
    return p


# ---------------------------------------------------------------------------------------------
# Turning torch's export errors into a sentence: which operator or line, and what to do

_TORCH_DIR = str(Path(torch.__file__).parent)
_THIS_FILE = str(Path(__file__))


def _chain(err: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    while err is not None and err not in seen:
        seen.append(err)
        err = err.__cause__ or err.__context__
    return seen


def _user_frame(err: BaseException) -> str | None:
    """The last line outside torch (and this module) in the exception's traceback."""
    for e in reversed(_chain(err)):
        frames = [f for f in traceback.extract_tb(e.__traceback__)
                  if not f.filename.startswith(_TORCH_DIR) and f.filename != _THIS_FILE
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


def _explain_trace_error(err: Exception, model: nn.Module, example: torch.Tensor, side: int,
                         name: str, too_small: bool) -> ExportError:
    from torch.fx.experimental.symbolic_shapes import GuardOnDataDependentSymNode

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
def _shape_log(level: int, records: list[str] | None = None):
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
    with _shape_log(logging.INFO, records):
        try:
            torch.export.export(model, (example,), dynamic_shapes=_dynamic_shapes(side))
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


def _explain_onnx_error(err: Exception, program: torch.export.ExportedProgram,
                        name: str) -> ExportError:
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


def _explain_save_error(err: Exception, program: torch.export.ExportedProgram,
                        name: str) -> ExportError:
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
