"""rnlib.runtime's mixed precision: bfloat16 only where the CPU computes it natively, fp16 with a
gradient scaler on CUDA, one clear refusal elsewhere. The processor is mocked both ways, so these
tests mean the same on any machine. Inference in bf16 on the CPU runs a bf16 copy of the model
(BF16Inference), training runs under autocast.

Tolerance of a bf16 model against float32: 5e-2 of the largest logit. bf16 keeps 8 significant
bits (each rounding moves a value by up to 2^-9 = 2e-3 of it); through a ResNet-18 and its
decoder these add up to 0.8e-2 to 1.9e-2 of the largest logit for every registered model that
takes ResNet-18 (1.3e-2 to 2.7e-2 for the full-size models in benchmarks/cpu_speed.md), while a real fault moves them much further: the stem's batch
norm dropped from the bf16 copy of _model() moved them by 3.9e-1. The lower bound, 1e-4, is
float32's: a "bf16" copy that still computed in float32 would fall under it."""

import pytest
import torch
from torch import nn

import rnlib
from rnlib.cli import main
from rnlib.evaluate import evaluate
from rnlib.runtime import Autocast, BF16Inference, amp_dtype, inference_model, native_bf16

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


@pytest.fixture
def bf16_cpu(monkeypatch):
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"avx512_bf16": True})


@pytest.fixture
def avx2_cpu(monkeypatch):
    monkeypatch.setattr(torch.cpu, "get_capabilities",
                        lambda: {"avx2": True, "avx512_bf16": False, "amx_bf16": False})


@pytest.mark.parametrize("capabilities, native", [
    ({"avx512_bf16": True}, True), ({"amx_bf16": True, "avx512_bf16": False}, True),
    ({"bf16": True}, True), ({"avx2": True, "avx512_f": True}, False), ({}, False)])
def test_native_bf16_follows_torchs_query_of_the_processor(monkeypatch, capabilities, native):
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: capabilities)
    assert native_bf16() is native


def test_amp_is_bf16_on_a_cpu_that_computes_it(bf16_cpu):
    assert amp_dtype("on", CPU) is torch.bfloat16
    assert amp_dtype("bf16", CPU) is torch.bfloat16
    assert amp_dtype("auto", CPU) is None  # the course's default on the CPU stays fp32
    assert amp_dtype("off", CPU) is None
    with pytest.raises(ValueError, match="fp16 is for CUDA GPUs"):
        amp_dtype("fp16", CPU)


def test_amp_is_refused_on_a_cpu_without_native_bf16(avx2_cpu):
    for amp in ("on", "bf16"):
        with pytest.raises(ValueError, match="no native bfloat16.*emulated and slower") as err:
            amp_dtype(amp, CPU)
        assert "\n" not in str(err.value)
    assert amp_dtype("auto", CPU) is None and amp_dtype("off", CPU) is None


def test_native_amp_is_bf16_where_the_hardware_computes_it_and_fp32_elsewhere(monkeypatch):
    """The course's ``amp="native"`` (cpu-quick): never refused, bf16 only where it is fast."""
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"amx_bf16": True})
    assert amp_dtype("native", CPU) is torch.bfloat16
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"avx2": True})
    assert amp_dtype("native", CPU) is None
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert amp_dtype("native", CUDA) is torch.bfloat16  # the CPU's capabilities do not matter
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert amp_dtype("native", CUDA) is None  # no fp16 without a gradient scaler asked for


def test_amp_on_cuda_is_fp16_and_auto_prefers_bf16(monkeypatch, avx2_cpu):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert amp_dtype("on", CUDA) is torch.float16  # the CPU's capabilities do not matter
    assert amp_dtype("auto", CUDA) is torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert amp_dtype("auto", CUDA) is torch.float16


def test_rnlib_train_refuses_amp_before_any_work(avx2_cpu, tmp_path):
    data = tmp_path / "data"
    with pytest.raises(SystemExit) as err:
        main(["train", "--amp", "--device", "cpu", "--steps", "1", "--data-dir", str(data),
              "--out", str(tmp_path / "out")])
    assert str(err.value).startswith("rnlib train: --amp on this CPU: it has no native bfloat16")
    assert not data.exists() and not (tmp_path / "out").exists()  # no data made, nothing written


class _Probe(nn.Module):
    """A 1x1 convolution that records the dtype its input arrives in."""

    in_channels, num_classes = 3, 2

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 1)
        self.seen: list[torch.dtype] = []

    def forward(self, x):
        self.seen.append(self.conv(x).dtype)
        return self.conv(x)


def test_autocast_runs_the_model_in_bf16_and_gives_float32():
    model = _Probe()
    x = torch.randn(2, 3, 8, 8)
    out = Autocast(model, torch.bfloat16)(x)
    assert model.seen == [torch.bfloat16] and out.dtype == torch.float32
    assert (out - model(x)).abs().max() <= 2e-2 * model(x).abs().max()  # bf16's 8-bit mantissa
    assert Autocast(model, torch.bfloat16).in_channels == 3


def test_autocast_keeps_the_models_mode():
    model = nn.Sequential(nn.Conv2d(3, 2, 3), nn.Dropout(0.5)).eval()
    assert not Autocast(model, torch.bfloat16).training
    assert Autocast(model.train(), torch.bfloat16).training


def _model() -> nn.Module:
    """LW-RefineNet on ResNet-18, 3 classes, batch-norm statistics that are not 0 and 1 (so
    that rounding them would show), in eval mode."""
    torch.manual_seed(0)
    model = rnlib.build_model("refinenet-lw", num_classes=3, backbone="resnet18").eval()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    return model


def _relative_gap(low: torch.Tensor, fp32: torch.Tensor) -> float:
    return ((low - fp32).abs().max() / fp32.abs().max()).item()


def test_bf16_inference_is_a_bf16_copy_that_gives_float32_logits():
    model = _model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    bf16 = BF16Inference(model)
    x = torch.randn(2, 3, 45, 61)  # odd sides: the model resizes to the input's own size
    with torch.no_grad():
        out, fp32 = bf16(x), model(x)
    assert out.dtype == torch.float32 and out.shape == (2, 3, 45, 61)
    assert 1e-4 < _relative_gap(out, fp32) < 5e-2  # the module docstring's tolerance
    assert bf16.in_channels == 3 and bf16.num_classes == 3 and not bf16.training
    copied = dict(bf16.model.named_modules())
    for name, module in model.named_modules():  # batch norm stays float32 and unrounded
        for key, value in module.state_dict(keep_vars=False).items():
            if "." in key or not value.is_floating_point():
                continue
            kept = copied[name].state_dict()[key]
            if isinstance(module, nn.BatchNorm2d):
                assert kept.dtype == torch.float32 and torch.equal(kept, value), (name, key)
            else:
                assert kept.dtype == torch.bfloat16, (name, key)
    assert not any(p.requires_grad for p in bf16.parameters())
    for key, value in model.state_dict().items():  # the model itself: float32, as it was
        assert value.dtype == before[key].dtype and torch.equal(value, before[key]), key


def test_bf16_inference_checks_the_images_as_given():
    bf16 = BF16Inference(_model())
    with pytest.raises(TypeError, match="models take floating-point images, got torch.uint8"):
        bf16(torch.zeros(1, 3, 40, 40, dtype=torch.uint8))  # not turned into bf16 first
    with pytest.raises(ValueError, match="add the batch dimension with x.unsqueeze"):
        bf16(torch.randn(3, 40, 40))
    with pytest.raises(TypeError, match="got list"):
        bf16([torch.randn(1, 3, 40, 40)])
    assert bf16(torch.randn(1, 3, 40, 40, dtype=torch.float64)).dtype == torch.float32


def test_bf16_inference_keeps_channels_last_and_can_be_made_under_inference_mode():
    model = _model().to(memory_format=torch.channels_last)
    with torch.inference_mode():
        bf16 = BF16Inference(model)
    x = torch.randn(1, 3, 40, 56).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():  # used outside inference mode, as verify_export does
        out = bf16(x)
    assert out.is_contiguous(memory_format=torch.channels_last)
    assert bf16.model.backbone.stem[0].weight.is_contiguous(memory_format=torch.channels_last)


def test_bf16_inference_refuses_to_train():
    bf16 = BF16Inference(_model())
    with pytest.raises(ValueError, match="does not train: train the float32 model"):
        bf16.train()
    assert not bf16.eval().training


def test_inference_model_is_a_bf16_copy_on_the_cpu_and_autocast_elsewhere():
    model = _Probe()
    assert inference_model(model, None) is model
    assert isinstance(inference_model(model, torch.bfloat16), BF16Inference)
    on_gpu = _Probe().to("meta")  # stands for a CUDA model: any device but the CPU
    assert isinstance(inference_model(on_gpu, torch.bfloat16), Autocast)
    assert isinstance(inference_model(on_gpu, torch.float16), Autocast)


def _conv_dtypes(model: nn.Module) -> list[tuple[torch.dtype, torch.dtype]]:
    """(weight, input) dtypes of each call of ``model``'s first convolution, in ``model`` and
    in any copy of it (a copy keeps the hook, and the hook appends to this one list)."""
    seen = []
    first = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    first.register_forward_hook(lambda m, args, out: seen.append((m.weight.dtype, args[0].dtype)))
    return seen


def test_evaluate_runs_a_bf16_copy_for_bf16():
    model = _Probe()
    seen = _conv_dtypes(model)
    batches = [(torch.randn(2, 3, 8, 8), torch.randint(0, 2, (2, 8, 8)))]
    evaluate(model, batches, 2)
    evaluate(model, batches, 2, amp_dtype=torch.bfloat16)
    fp32, bf16 = (torch.float32,) * 2, (torch.bfloat16,) * 2
    assert seen == [fp32, fp32, bf16, bf16]  # the probe calls its convolution twice
    assert model.conv.weight.dtype == torch.float32


def test_bench_measures_a_bf16_copy_and_keeps_the_models_mode():
    from rnlib.bench import measure

    model = nn.Sequential(nn.Conv2d(3, 2, 3), nn.Dropout(0.5)).eval()
    seen = _conv_dtypes(model)
    cost = measure("probe", model, (16, 16), repeats=1, amp_dtype=torch.bfloat16)
    assert cost.latency_ms > 0 and cost.peak_mem_mib >= 0
    assert seen and set(seen) - {(torch.float32, torch.float32)} == {
        (torch.bfloat16, torch.bfloat16)}  # FLOPs counted on the model, time on the copy
    assert not model.training and not model[1].training  # dropout stays off afterwards
    assert model[0].weight.dtype == torch.float32


def test_rnlib_bench_measures_in_bf16_where_the_cpu_has_it(bf16_cpu, capsys, monkeypatch):
    made = []
    monkeypatch.setattr(BF16Inference, "__init__", _spy(BF16Inference.__init__, made))
    main(["bench", "--models", "fcn32s", "--backbone", "resnet18", "--size", "64", "64",
          "--repeats", "1", "--amp"])
    assert "cpu, NCHW, bfloat16," in capsys.readouterr().out
    assert made == ["SegmentationModel"]  # latency and memory: of a bf16 copy of the model


def _spy(init, made: list):
    """``BF16Inference.__init__`` that also records the class name of each model copied."""
    def spy(self, model):
        made.append(type(model).__name__)
        init(self, model)
    return spy


def test_rnlib_eval_scores_a_bf16_copy_where_the_cpu_has_it(bf16_cpu, tmp_path, capsys,
                                                            monkeypatch):
    from rnlib import evaluate as evaluation

    main(["train", "--model", "fcn32s", "--backbone", "resnet18", "--steps", "1",
          "--count", "16", "--batch-size", "8", "--data-dir", str(tmp_path / "data"),
          "--out", str(tmp_path / "run")])
    predict, scored = evaluation.predict, []

    def spy(model, images, *args):
        scored.append((type(model).__name__, {p.dtype for p in model.parameters()}))
        return predict(model, images, *args)

    monkeypatch.setattr(evaluation, "predict", spy)
    main(["eval", str(tmp_path / "run" / "last.pt"), "--amp", "--data-dir",
          str(tmp_path / "data")])
    assert "mIoU" in capsys.readouterr().out
    assert scored and {name for name, _ in scored} == {"BF16Inference"}
    assert all(torch.bfloat16 in dtypes for _, dtypes in scored)


def test_rnlib_bench_refuses_amp_where_the_cpu_lacks_it(avx2_cpu):
    with pytest.raises(SystemExit, match="rnlib bench: --amp on this CPU"):
        main(["bench", "--models", "fcn32s", "--amp"])



def test_the_trainer_trains_in_bf16_reproducibly_where_the_cpu_has_it(bf16_cpu, tmp_path):
    from rnlib import build_model
    from rnlib.data import SegmentationDataset, eval_transform, train_transform
    from rnlib.data.sources import shapes
    from rnlib.train import TrainConfig, Trainer

    train = SegmentationDataset(shapes("train", count=8, size=32, root=tmp_path), 5,
                                train_transform(32))
    val = SegmentationDataset(shapes("val", count=4, size=32, root=tmp_path), 5, eval_transform())
    config = TrainConfig(model="fcn8s", backbone="resnet18", num_classes=5, batch_size=4,
                         epochs=1, seed=0, amp="on", device="cpu")
    weights, seen = [], []
    for run in ("a", "b"):
        torch.manual_seed(0)
        model = build_model("fcn8s", num_classes=5, backbone="resnet18")
        first = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
        first.register_forward_hook(lambda m, i, out: seen.append(out.dtype))
        trainer = Trainer(model, train, val, config, tmp_path / run, progress=False)
        assert trainer.amp_dtype is torch.bfloat16 and not trainer.scaler.is_enabled()
        trainer.fit()
        weights.append(trainer.model.state_dict())
    assert set(seen) == {torch.bfloat16}  # training steps and validation alike
    for name, value in weights[0].items():
        assert torch.equal(value, weights[1][name]), name  # bf16 runs repeat bit for bit
