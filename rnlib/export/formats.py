"""What both export formats share: their names and constants, the error, the dynamic shapes."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

FORMATS = ("pt2", "onnx")
MIN_SIDE = 33  # smallest dynamic H, W: the 1/32 feature map must be at least 2x2 (see above)
ONNX_OPSET = 18  # the opset torch's ONNX translations are written for; ONNX Runtime >= 1.14
TOLERANCE = 1e-4  # largest |file - eager| accepted, relative to the largest |eager logit|
VERIFY_SIZES = ((96, 128), (113, 161))  # two sizes, different in both sides, one odd
EXAMPLE_SIZE = (128, 160)  # the traced example; any size >= min_side gives the same program
METADATA = "rnlib.json"  # where the file keeps what rnlib knows about it (min_side, model)
_ONNX_PACKAGES = ("onnx", "onnxscript", "onnxruntime")


class ExportError(ValueError):
    """A model that cannot be exported, with the operator or line at fault and what to do."""



def missing_onnx_packages() -> list[str]:
    """The packages ONNX export and verification need that are not installed."""
    return [name for name in _ONNX_PACKAGES if importlib.util.find_spec(name) is None]


def need_onnx() -> None:
    missing = missing_onnx_packages()
    if missing:
        raise ExportError(f"ONNX export needs {', '.join(missing)}, which "
                          f"{'is' if len(missing) == 1 else 'are'} not installed: "
                          f"pip install 'rnlib[export]' (or pip install {' '.join(missing)}); "
                          f"or export with --format pt2, which needs nothing more")


def file_format(fmt: str | None, path: Path | None = None) -> str:
    fmt = fmt or (path.suffix.lstrip(".").lower() if path is not None else "")
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    return fmt



def dynamic_shapes(min_side: int) -> tuple[dict[int, torch.export.Dim]]:
    """Batch, height and width as symbols; the model's only input is the image batch."""
    return ({0: torch.export.Dim("batch", min=1), 2: torch.export.Dim("height", min=min_side),
             3: torch.export.Dim("width", min=min_side)},)


