"""rnlib.runtime's mixed precision: bfloat16 only where the CPU computes it natively, fp16 with a
gradient scaler on CUDA, one clear refusal elsewhere. The processor is mocked both ways, so these
tests mean the same on any machine."""

import pytest
import torch
from torch import nn

from rnlib.cli import main
from rnlib.evaluate import evaluate
from rnlib.runtime import Autocast, amp_dtype, native_bf16

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


def test_autocast_keeps_the_models_mode_through_a_measurement():
    from rnlib.bench import measure

    model = nn.Sequential(nn.Conv2d(3, 2, 3), nn.Dropout(0.5)).eval()
    assert not Autocast(model, torch.bfloat16).training
    measure("probe", model, (16, 16), repeats=1, memory=False, amp_dtype=torch.bfloat16)
    assert not model.training and not model[1].training  # dropout stays off afterwards


def test_evaluate_runs_under_the_amp_it_is_given():
    model = _Probe()
    batches = [(torch.randn(2, 3, 8, 8), torch.randint(0, 2, (2, 8, 8)))]
    evaluate(model, batches, 2)
    evaluate(model, batches, 2, amp_dtype=torch.bfloat16)
    assert model.seen == [torch.float32, torch.bfloat16]


def test_rnlib_bench_measures_in_bf16_where_the_cpu_has_it(bf16_cpu, capsys):
    main(["bench", "--models", "fcn32s", "--backbone", "resnet18", "--size", "64", "64",
          "--repeats", "1", "--amp"])
    assert "cpu, NCHW, bfloat16," in capsys.readouterr().out


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
