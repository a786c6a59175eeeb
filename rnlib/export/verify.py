"""Checking an exported file against the eager model on random images."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from .formats import METADATA, VERIFY_SIZES, ExportError, file_format, need_onnx
from .report import Difference


def _read_metadata(path: Path, fmt: str) -> dict:
    if fmt == "pt2":
        extra = {METADATA: ""}
        program = torch.export.load(path, extra_files=extra)
        return {**json.loads(extra[METADATA] or "{}"), "program": program}
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map.get(METADATA, "{}")
    return {**json.loads(meta), "session": session}


def check_sizes(sizes: Sequence[Sequence[int]], min_side: int, what: str) -> None:
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
    fmt = file_format(None, path)
    if fmt == "onnx":
        need_onnx()
    if not path.exists():
        raise FileNotFoundError(f"no exported file at {path}; export it first")
    meta = _read_metadata(path, fmt)
    min_side = meta.get("min_side", 1)
    check_sizes(sizes, min_side, path.name)
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


