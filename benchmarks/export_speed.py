"""ONNX Runtime against eager PyTorch on the CPU, side by side in one run (issue 13).

For each model (random weights, 21 classes, batch 1): eager PyTorch in NCHW, in channels_last,
and in channels_last with batch norm folded (``rnlib.deploy.fuse_batchnorm``), against the same
model exported by ``rnlib.export`` to ONNX (opset 18, dynamic batch, height and width, exported
from the plain model: ONNX Runtime folds batch norm itself) and run by ONNX Runtime's CPU
execution provider with its default graph optimizations (ORT_ENABLE_ALL). ONNX Runtime gets as
many intra-op threads as ``torch.get_num_threads()`` and one inter-op thread (sequential
execution), so both sides use the same cores; its worker threads sleep between runs instead of
spin-waiting (ORT's default), which would take the cores from the eager run that follows.
The variants are timed interleaved (one run of each, repeated), after one warm-up run each; the
table gives medians, the ratios ORT / eager, and the largest |ORT - eager| relative to the
largest logit.

    .venv/bin/python benchmarks/export_speed.py                      # -> benchmarks/export_speed.md
    .venv/bin/python benchmarks/export_speed.py --size 64 --repeats 1 --models lw50  # smoke run
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

import rnlib
from rnlib.deploy import fuse_batchnorm
from rnlib.export import MIN_SIDE, ONNX_OPSET, export_model
from rnlib.tables import command_line, made_by, markdown_table

MODELS = {  # key: (row name, registry name, backbone)
    "rn101": ("RefineNet-101", "refinenet", "resnet101"),
    "lw50": ("LW-RefineNet-50", "refinenet-lw", "resnet50"),
    "fcn50": ("FCN-8s-50", "fcn8s", "resnet50"),
}
VARIANTS = ("eager NCHW", "eager channels_last", "eager channels_last + folded BN",
            "ONNX Runtime")


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _session(path: Path):
    import onnxruntime

    options = onnxruntime.SessionOptions()  # graph_optimization_level: ORT_ENABLE_ALL (default)
    options.intra_op_num_threads = torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    # ORT's workers spin after each run by default; interleaved with PyTorch, they would take
    # the cores that eager PyTorch runs on next, so they sleep instead (ORT may lose a little)
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _runners(name: str, size: int, tmp: Path) -> tuple[dict[str, Callable[[], torch.Tensor]],
                                                       float]:
    """One zero-argument callable per variant (each returns logits), and the export's time."""
    _, model_name, backbone = MODELS[name]
    torch.manual_seed(0)
    plain = rnlib.build_model(model_name, num_classes=21, backbone=backbone).eval()
    x = torch.randn(1, 3, size, size)
    started = time.perf_counter()
    exported = export_model(plain, tmp / f"{name}.onnx", fmt="onnx", name=MODELS[name][0])
    export_s = time.perf_counter() - started
    session = _session(exported.path)
    input_name = session.get_inputs()[0].name
    last = copy.deepcopy(plain).to(memory_format=torch.channels_last)
    folded = fuse_batchnorm(plain).to(memory_format=torch.channels_last)  # a copy
    x_last = x.contiguous(memory_format=torch.channels_last)
    x_numpy = x.numpy()
    return {
        "eager NCHW": lambda: plain(x),
        "eager channels_last": lambda: last(x_last),
        "eager channels_last + folded BN": lambda: folded(x_last),
        "ONNX Runtime": lambda: torch.from_numpy(session.run(None, {input_name: x_numpy})[0]),
    }, export_s


def measure(name: str, size: int, repeats: int) -> dict:
    """Median milliseconds of each variant, the ORT-eager difference, the export time."""
    with tempfile.TemporaryDirectory() as tmp:
        runners, export_s = _runners(name, size, Path(tmp))  # exports outside inference mode
    with torch.inference_mode():
        outputs = {variant: run() for variant, run in runners.items()}  # warm-up, and outputs
        reference = outputs["eager NCHW"]
        diff = (outputs["ONNX Runtime"] - reference).abs().max().item()
        relative = diff / reference.abs().max().item()
        times: dict[str, list[float]] = {variant: [] for variant in runners}
        for _ in range(repeats):  # interleaved: a shared machine's drifts hit every variant
            for variant, run in runners.items():
                start = time.perf_counter()
                run()
                times[variant].append((time.perf_counter() - start) * 1e3)
    return {"ms": {v: statistics.median(t) for v, t in times.items()}, "diff": diff,
            "relative": relative, "export_s": export_s}


def table(results: dict[str, dict]) -> str:
    header = ["model", *(f"{v} (ms)" for v in VARIANTS), "ORT / eager NCHW",
              "ORT / eager channels_last", "ORT / eager cl + folded BN",
              "max abs(ORT - eager) / max abs(logit)", "ONNX export (s)"]
    rows = []
    for name, r in results.items():
        ms, ort = r["ms"], r["ms"]["ONNX Runtime"]
        rows.append([MODELS[name][0], *(f"{ms[v]:.0f}" for v in VARIANTS),
                     *(f"{ort / ms[v]:.2f}x" for v in VARIANTS[:3]),
                     f"{r['relative']:.1e}", f"{r['export_s']:.0f}"])
    return markdown_table(header, rows)


def main(argv: Sequence[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=512, help="image side (default: 512)")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved timed runs")
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS),
                        help="rn101: RefineNet-101, lw50: LW-RefineNet-50, fcn50: FCN-8s-50")
    parser.add_argument("--out", help="default: benchmarks/export_speed.md")
    args = parser.parse_args(argv)
    if args.size < MIN_SIDE:
        parser.error(f"--size must be at least {MIN_SIDE}, the smallest side of an exported model")
    import onnx
    import onnxruntime

    results = {}
    for name in args.models:
        started = time.perf_counter()
        results[name] = measure(name, args.size, args.repeats)
        _log(f"{MODELS[name][0]}: {time.perf_counter() - started:.0f} s")
    command = command_line("python benchmarks/export_speed.py", argv)
    threads = torch.get_num_threads()
    text = (
        f"# ONNX Runtime against eager PyTorch on the CPU\n\n"
        f"{made_by(command)} onnxruntime "
        f"{onnxruntime.__version__} (CPUExecutionProvider, default graph optimizations, "
        f"{threads} intra-op threads, 1 inter-op, sequential, no spin-waiting); "
        f"onnx {onnx.__version__}, opset {ONNX_OPSET}; "
        f"medians of {args.repeats} interleaved runs after one warm-up.\n"
        f"Random weights, 21 classes, {args.size}x{args.size}, batch 1, float32. The ONNX file "
        f"is exported by `rnlib.export` from the plain model (dynamic batch, height and width; "
        f"ONNX Runtime folds batch norm itself); ratios below 1 mean ONNX Runtime is faster.\n\n"
        + table(results) + "\n")
    print(text)
    out = Path(args.out or Path(__file__).parent / "export_speed.md")
    out.write_text(text)
    return text


if __name__ == "__main__":
    main()
