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

from .formats import (
    FORMATS,
    MIN_SIDE,
    ONNX_OPSET,
    TOLERANCE,
    VERIFY_SIZES,
    ExportError,
    missing_onnx_packages,
)
from .program import export_checkpoint, export_model
from .report import Difference, ExportedFile, ExportReport
from .verify import verify_export

__all__ = ["FORMATS", "MIN_SIDE", "ONNX_OPSET", "TOLERANCE", "VERIFY_SIZES", "ExportError",
           "ExportedFile", "Difference", "ExportReport", "missing_onnx_packages", "export_model",
           "verify_export", "export_checkpoint"]
