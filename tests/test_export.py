"""rnlib.export: .pt2 and ONNX files with dynamic batch, height and width compute what the
eager model computes, and a model that cannot be exported gets a sentence naming the operator.

Sizes: 64x96 and 81x113 differ in both sides; 81x113 is odd and no side is a multiple of 32.
Both are above MIN_SIDE (33), the smallest side an exported rnlib model takes (torch.export
assumes a dynamic size is never 1; from 33 up the 1/32 feature map is at least 2x2).

Tolerance: TOLERANCE = 1e-4 of the largest |logit|. The files run the same float32 arithmetic
in another order (ONNX Runtime's kernels, channels_last against contiguous convolutions, batch
norm folded into the weights), which moves the logits by a few float32 roundings (eps 1.2e-7)
per layer: measured 1e-6 to 4e-6 of the scale here. A real fault (a wrong resize convention, a
batch norm lost or applied twice, a size fixed at the example's) moves them by 1e-2 or more.
"""

import argparse
import functools
import importlib.util
import json
from dataclasses import asdict
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import rnlib
from rnlib import export
from rnlib.cli.export import add_export_command
from rnlib.config import TrainConfig
from rnlib.export import ExportError, export_model, verify_export

SIZES = ((64, 96), (81, 113))
OPTIONS = {"refinenet": {"widths": (32, 32)}, "refinenet-lw": {}, "fcn8s": {}}
needs_onnx = pytest.mark.skipif(bool(export.missing_onnx_packages()),
                                reason="needs onnx, onnxscript and onnxruntime ([export] extra)")


@functools.cache
def _model(name: str) -> nn.Module:
    """ResNet-18, 3 classes, non-trivial batch-norm statistics (so that folding has work to
    do), in channels_last as rnlib trains; built once per test session."""
    torch.manual_seed(0)
    model = rnlib.build_model(name, num_classes=3, backbone="resnet18", **OPTIONS[name]).eval()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    return model.to(memory_format=torch.channels_last)


def _assert_close(differences, sizes=SIZES):
    assert [d.size for d in differences] == [tuple(s) for s in sizes]
    for d in differences:
        assert d.scale > 0.1, d  # logits of a sensible size, so that the relative test means something
        assert d.relative <= export.TOLERANCE, d


@pytest.mark.parametrize("name", list(OPTIONS))
def test_pt2_file_computes_the_eager_logits_at_any_size(name, tmp_path):
    model = _model(name)
    exported = export_model(model, tmp_path / f"{name}.pt2", name=name)
    assert exported.fmt == "pt2" and exported.min_side == export.MIN_SIDE
    _assert_close(verify_export(exported.path, model, SIZES, batch=2))  # any batch too
    assert next(model.parameters()).is_contiguous(memory_format=torch.channels_last), \
        "the model itself is left in its memory format"


@needs_onnx
@pytest.mark.parametrize("name,fold_bn", [("refinenet", False), ("refinenet-lw", True)])
def test_onnx_file_computes_the_eager_logits_at_any_size(name, fold_bn, tmp_path):
    import onnx

    model = _model(name)
    exported = export_model(model, tmp_path / f"{name}.onnx", fold_bn=fold_bn, name=name)
    _assert_close(verify_export(exported.path, model, SIZES))
    graph = onnx.load(str(exported.path)).graph
    dims = [d.dim_param or d.dim_value for d in graph.input[0].type.tensor_type.shape.dim]
    assert graph.input[0].name == "image" and dims == ["batch", 3, "height", "width"]
    assert graph.output[0].name == "logits"
    if fold_bn:
        assert not any(n.op_type == "BatchNormalization" for n in graph.node)


@needs_onnx
def test_rnlib_export_writes_and_checks_a_checkpoint(tmp_path, capsys):
    model = _model("fcn8s")
    config = json.loads(json.dumps(asdict(TrainConfig(  # plain data, tuples as lists
        model="fcn8s", backbone="resnet18", num_classes=3, model_options={}))))
    checkpoint = tmp_path / "last.pt"
    torch.save({"model": model.state_dict(), "config": config}, checkpoint)
    parser = argparse.ArgumentParser(prog="rnlib")
    add_export_command(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["export", str(checkpoint), "--format", "onnx", "--fold-bn",
                              "--size", "64", "96", "--size", "81", "113"])
    args.run(args)
    out = capsys.readouterr().out
    assert (tmp_path / "last.onnx").is_file()  # next to the checkpoint by default
    assert "last.onnx (onnx," in out and "with batch norm folded" in out, out
    assert "64x96: largest |onnx - eager|" in out and "81x113" in out, out
    assert out.count(", ok)") == 2, out


def test_a_report_above_the_tolerance_is_not_ok(tmp_path):
    file = export.ExportedFile(tmp_path / "x.onnx", "onnx", 33, 1.0)
    good, bad = export.Difference((64, 96), 1e-6, 1.0), export.Difference((81, 113), 1e-2, 1.0)
    assert export.ExportReport(file, "m", False, [good]).ok
    report = export.ExportReport(file, "m", False, [good, bad])
    assert not report.ok and not bad.ok
    loose = export.ExportReport(file, "m", False, [good, bad], tolerance=0.1)
    assert loose.ok and bad.within(0.1)  # a report judges by its own tolerance


class _DataDependent(nn.Module):
    def forward(self, x):
        if x.mean() > 0:  # a Python branch on a tensor's value
            return x * 2
        return x


class _Cummax(nn.Module):
    def forward(self, x):
        return torch.cummax(x, dim=1).values  # no ONNX translation in torch 2.14


class _FixedSize(nn.Module):
    def forward(self, x):
        half = (int(x.shape[2]) // 2, int(x.shape[3]) // 2)  # int() fixes the size
        return F.interpolate(x, size=half, mode="bilinear")


def test_a_branch_on_data_is_named_with_what_to_do(tmp_path):
    with pytest.raises(ExportError, match=r"aten\.item.*`if x\.mean\(\) > 0:.*torch\.where"):
        export_model(_DataDependent(), tmp_path / "m.pt2")


def test_another_torch_keeps_its_own_error_message(tmp_path, monkeypatch):
    from rnlib.export import explain

    monkeypatch.setattr(explain, "TORCH_VERSION", "2.99.0")  # text rnlib was not written for
    with pytest.raises(ExportError, match=r"torch\.export of _DataDependent failed: .*"
                                          r"\(torch 2\.99\.0's own message") as info:
        export_model(_DataDependent(), tmp_path / "m.pt2")
    message = str(info.value)
    assert "torch.where" not in message and "\n" not in message
    assert explain._first_line(info.value.__cause__) in message


def test_a_size_fixed_by_int_is_named_with_its_line(tmp_path):
    with pytest.raises(ExportError, match=r"height and width of _FixedSize dynamic.*"
                                          r"test_export\.py:\d+ in forward: `half = \(int"):
        export_model(_FixedSize(), tmp_path / "m.pt2")


@needs_onnx
def test_an_operator_without_onnx_translation_is_named(tmp_path):
    with pytest.raises(ExportError, match=r"no translation for the operator aten\.cummax "
                                          r"\(at .*test_export\.py.*--format pt2"):
        export_model(_Cummax(), tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()
    exported = export_model(_Cummax(), tmp_path / "m.pt2")  # the other format holds it
    assert all(d.max_abs_diff == 0 for d in verify_export(exported.path, _Cummax(), SIZES))
    with pytest.raises(ExportError, match=r"heights and widths >= 33, and 32x64 is smaller"):
        verify_export(exported.path, _Cummax(), [(32, 64)])


def test_unknown_format_is_refused(tmp_path):
    with pytest.raises(ExportError, match="choose one of pt2, onnx"):
        export_model(_Cummax(), tmp_path / "m.tflite")


@needs_onnx
def test_export_speed_script_runs_at_a_tiny_size(tmp_path):
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "export_speed.py"
    spec = importlib.util.spec_from_file_location("export_speed", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    out = tmp_path / "export_speed.md"
    script.main(["--size", "64", "--repeats", "1", "--models", "lw50", "--out", str(out)])
    text = out.read_text()
    for fragment in ("| LW-RefineNet-50 |", "ORT / eager NCHW", "onnxruntime",
                     "export_speed.py --size 64 --repeats 1 --models lw50"):
        assert fragment in text, (fragment, text)


def _checkpoint(tmp_path: Path) -> Path:
    config = json.loads(json.dumps(asdict(TrainConfig(  # plain data, tuples as lists
        model="fcn8s", backbone="resnet18", num_classes=3, model_options={}))))
    checkpoint = tmp_path / "last.pt"
    torch.save({"model": _model("fcn8s").state_dict(), "config": config}, checkpoint)
    return checkpoint


@pytest.mark.parametrize("fold_bn", [False, True])
def test_an_amp_export_computes_in_bf16_end_to_end(tmp_path, monkeypatch, fold_bn):
    """The program is a bf16 copy of the model (rnlib.runtime.BF16Inference): float32 images
    in, one cast to bf16, every operation in bf16 (batch norm with float32 statistics), one
    cast of the logits to float32; verified at two sizes against that eager bf16 model with
    the float32 tolerance. With fold_bn the eager model is folded too (in float32, then
    rounded once), so that both sides compute the same function."""
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"avx512_bf16": True})
    report = export.export_checkpoint(_checkpoint(tmp_path), fmt="pt2", sizes=SIZES, amp="on",
                                      fold_bn=fold_bn)
    assert "in bfloat16" in report.summary() and report.ok, report.summary()
    _assert_close(report.differences)
    loaded = torch.export.load(report.exported.path)
    outputs = {}  # dtype of each operation's result
    for node in loaded.graph.nodes:
        value = node.meta.get("val")
        if node.op == "call_function" and isinstance(value, torch.Tensor):
            outputs.setdefault(value.dtype, []).append(str(node.target))
    assert outputs[torch.float32] == ["aten.to.dtype"], outputs[torch.float32]  # the logits
    assert "aten.conv2d.default" in outputs[torch.bfloat16]
    assert ("aten.batch_norm.default" in outputs[torch.bfloat16]) is not fold_bn
    x = torch.randn(1, 3, *SIZES[0])
    with torch.no_grad():
        fp32 = _model("fcn8s")(x)
        gap = (loaded.module()(x) - fp32).abs().max() / fp32.abs().max()
    assert 1e-4 < gap < 5e-2  # bf16 rounding: more than float32's, less than a real fault


def test_an_amp_export_to_onnx_or_on_a_cpu_without_bf16_is_refused(tmp_path, monkeypatch):
    checkpoint = _checkpoint(tmp_path)
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"avx512_bf16": True})
    with pytest.raises(ExportError, match="ONNX Runtime has no bfloat16 convolutions"):
        export.export_checkpoint(checkpoint, fmt="onnx", amp="on")
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"avx2": True})
    with pytest.raises(ValueError, match="no native bfloat16"):
        export.export_checkpoint(checkpoint, fmt="pt2", amp="on")
    assert not (tmp_path / "last.pt2").exists()
