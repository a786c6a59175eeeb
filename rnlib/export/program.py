"""Writing a model (or a checkpoint's) as a ``.pt2`` program or an ONNX graph."""

from __future__ import annotations

import contextlib
import copy
import io
import json
import logging
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from ..atomic import check_output
from ..deploy import fuse_batchnorm
from .explain import (
    explain_onnx_error,
    explain_save_error,
    explain_trace_error,
    is_min_size_violation,
    shape_log,
)
from .formats import (
    EXAMPLE_SIZE,
    METADATA,
    MIN_SIDE,
    ONNX_OPSET,
    TOLERANCE,
    VERIFY_SIZES,
    ExportError,
    dynamic_shapes,
    file_format,
    need_onnx,
)
from .report import ExportedFile, ExportReport
from .verify import check_sizes, verify_export


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
    fmt = file_format(fmt, path)
    if fmt == "onnx":
        need_onnx()
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
            torch.export.save(program, path, extra_files={METADATA: metadata})
        except Exception as err:  # noqa: BLE001
            path.unlink(missing_ok=True)
            raise explain_save_error(err, program, name) from err
    else:
        onnx_program = _to_onnx(program, opset, min_side, name)
        onnx_program.model.metadata_props[METADATA] = metadata
        onnx_program.save(path)
    return ExportedFile(path, fmt, min_side, time.perf_counter() - started)


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
            with shape_log(logging.ERROR), contextlib.redirect_stderr(printed):
                program = torch.export.export(model, (example,), strict=False,
                                              dynamic_shapes=dynamic_shapes(side))
            sys.stderr.write(printed.getvalue())
            return program, side
        except Exception as err:  # noqa: BLE001 -- every failure becomes an ExportError
            too_small = is_min_size_violation(err)
            if too_small and i + 1 < len(sides):
                continue
            raise explain_trace_error(err, model, example, side, name, too_small) from err
    raise AssertionError("unreachable")


def _to_onnx(program: torch.export.ExportedProgram, opset: int, min_side: int, name: str):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's notes on its own internals
        try:
            return torch.onnx.export(program, dynamo=True, opset_version=opset,
                                     dynamic_shapes=dynamic_shapes(min_side),  # names the dims
                                     input_names=["image"], output_names=["logits"],
                                     verbose=False)
        except Exception as err:  # noqa: BLE001
            raise explain_onnx_error(err, program, name) from err




def export_checkpoint(checkpoint: str | Path, out: str | Path | None = None, *,
                      fmt: str = "pt2", fold_bn: bool = False,
                      sizes: Sequence[Sequence[int]] = VERIFY_SIZES,
                      min_side: int | None = None, tolerance: float = TOLERANCE,
                      amp: str = "off") -> ExportReport:
    """Export the model of a checkpoint written by the Trainer (next to it, with the suffix
    of ``fmt``, unless ``out`` is given) and verify it at ``sizes``. ``amp`` ("on", "bf16";
    :func:`rnlib.runtime.amp_dtype` on the CPU) stores a .pt2 program that computes in
    bfloat16 end to end, float32 images in and logits out
    (:class:`rnlib.runtime.BF16Inference`; batch norm folded in float32 first with
    ``fold_bn``), verified against that eager bf16 model."""
    from ..runs import load_trained
    from ..runtime import amp_dtype, inference_model

    checkpoint = Path(checkpoint)
    fmt = file_format(fmt)
    out = check_output(checkpoint.with_suffix(f".{fmt}") if out is None else out, (checkpoint,),
                       (f".{fmt}",), f"a {fmt} file")  # before anything is read or written
    sizes = [tuple(s) for s in sizes]
    check_sizes(sizes, min_side or MIN_SIDE, "an exported model")  # before minutes of export
    dtype = amp_dtype(amp, torch.device("cpu"))  # exported files run on the CPU
    if dtype is not None and fmt == "onnx":
        raise ExportError("ONNX Runtime has no bfloat16 convolutions on the CPU; export with "
                          "--amp as --format pt2, or to ONNX without --amp")
    model, config = load_trained(checkpoint)
    name = f"{config.model} ({config.backbone}, {config.num_classes} classes)"
    if dtype is not None:  # one rounding to bf16, of the folded weights with fold_bn
        model = inference_model(fuse_batchnorm(model) if fold_bn else model, dtype)
        name = f"{name} in {str(dtype).removeprefix('torch.')}"
    exported = export_model(model, out, fmt=fmt, fold_bn=fold_bn, min_side=min_side, name=name)
    differences = verify_export(out, model, sizes)
    return ExportReport(exported, name, fold_bn, differences, tolerance)


