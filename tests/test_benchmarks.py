"""The benchmark scripts run end to end, at toy sizes (their numbers are not checked here).

The throughput table is the one recorded on a GPU; run on the CPU it takes the same code path
apart from CUDA's own calls, so a script that breaks is found without a GPU.
"""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rnlib.runtime import native_bf16

SPEED = Path(__file__).resolve().parents[1] / "benchmarks" / "speed.py"


def _speed(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SPEED), *args], capture_output=True, text=True,
                          timeout=600)


@pytest.mark.parametrize("mode,expected", [
    ("throughput", ["| FCN-8s-50 |", "train AMP / fp32", "AMP is bfloat16"]),
    ("latency", ["| FCN-8s-50 |", "share of ceiling", "GFLOP/s"]),
    ("recipe", ["AdamW fused (rnlib)", "speed-up", "| NCHW, AdamW for-each |"]),
])
def test_speed_script_writes_its_table(mode, expected, tmp_path):
    out = tmp_path / f"{mode}.md"
    rows = [] if mode == "recipe" else ["--models", "FCN-8s-50"]  # recipe: the CPU preset
    done = _speed("--mode", mode, *rows, "--size", "32", "--batch", "2", "--repeats", "1",
                  "--out", str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    text = out.read_text()
    for fragment in expected:
        assert fragment in text, (fragment, text)
    assert f"speed.py --mode {mode}" in text  # the command that reproduces it
    if mode == "latency":  # bfloat16 where the CPU computes it natively, else said so
        assert ("max difference / max logit" if native_bf16() else "not measured") in text


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown without a GPU")
def test_cuda_without_a_gpu_says_so():
    done = _speed("--device", "cuda")
    assert done.returncode == 2 and "no CUDA GPU" in done.stderr


@pytest.mark.parametrize("script", ["speed", "profile_bf16"])
def test_no_rounds_is_refused_before_any_work(script):
    path = SPEED.with_name(f"{script}.py")
    done = subprocess.run([sys.executable, str(path), "--repeats", "0"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2 and "--repeats must be 1 or more, got 0" in done.stderr


def _crp_probe():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "crp_probe.py"
    spec = importlib.util.spec_from_file_location("crp_probe", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_crp_probe_switches_chained_pooling_off_as_the_ablation_does():
    """benchmarks/crp_probe.py: CRP switched off in a trained RefineNet computes what the
    "without CRP" model computes with the same other weights, its added term is then zero, and
    the chains come back afterwards."""
    import rnlib

    probe = _crp_probe()
    torch.manual_seed(0)
    model = rnlib.build_model("refinenet", num_classes=3, backbone="resnet18",
                              widths=(16, 16)).eval()
    without = rnlib.build_model("refinenet", num_classes=3, backbone="resnet18",
                                widths=(16, 16), crp_blocks=0).eval()
    missing = without.load_state_dict(model.state_dict(), strict=False)
    assert not missing.missing_keys and missing.unexpected_keys  # only the CRP convolutions
    images = torch.randn(2, 3, 64, 64)
    batches = [(images, torch.zeros(2, 64, 64, dtype=torch.long))]
    blocks = [b for _, b in probe.crps(model)]
    assert len(blocks) == 4
    with torch.inference_mode():
        before = model(images)
        with probe.switched_off(blocks):
            torch.testing.assert_close(model(images), without(images))
            assert probe.added_ratio(model, batches) == [0.0] * 4
        torch.testing.assert_close(model(images), before)
    assert all(r > 0 for r in probe.added_ratio(model, batches))


def _script(name: str):
    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _coarse_paths(monkeypatch):
    benchmarks = Path(__file__).resolve().parents[1] / "benchmarks"
    monkeypatch.syspath_prepend(str(benchmarks))  # it imports crp_probe from beside it
    return _script("coarse_paths")


def test_scaling_exponent_is_the_power_of_the_side():
    scaling = _script("scaling")
    sides = [256, 384, 512, 1024]
    assert abs(scaling.exponent(sides, [3 * s**2 for s in sides]) - 2) < 1e-9
    assert abs(scaling.exponent(sides, [0.5 * s**1.5 for s in sides]) - 1.5) < 1e-9


def test_scaling_script_writes_its_tables_and_plot(tmp_path):
    out = tmp_path / "scaling.md"
    script = SPEED.parent / "scaling.py"
    done = subprocess.run([sys.executable, str(script), "--models", "FCN-8s-101", "LW-RefineNet-50",
                           "--backbone", "resnet18", "--sides", "96", "160", "--repeats", "1",
                           "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    text = out.read_text()
    for fragment in ("### Latency (ms) by input side", "### Peak memory (MiB) by input side",
                     "| FCN-8s-101 |", "| LW-RefineNet-50 |", "exponent k", "VmHWM"):
        assert fragment in text, (fragment, text)
    memory = [line for line in text.split("### Peak memory")[1].splitlines()
              if line.startswith("| FCN-8s-101 |")][0].split("|")
    assert float(memory[2]) > 0 and float(memory[3]) > float(memory[2])  # grows with the side
    assert (tmp_path / "scaling.png").stat().st_size > 10_000
    numbers = json.loads((tmp_path / "scaling.json").read_text())  # what the table shows
    assert numbers["sides"] == [96, 160] and set(numbers["models"]) == {"FCN-8s-101",
                                                                        "LW-RefineNet-50"}
    fcn = numbers["models"]["FCN-8s-101"]
    assert [f"{v:.0f}" for v in fcn["memory_mib"]] == [m.strip() for m in memory[2:4]]
    assert fcn["memory_exponent"] == pytest.approx(_script("scaling").exponent(
        [96, 160], fcn["memory_mib"]))
    assert numbers["made_by"] in text


def test_onednn_profile_sums_the_measured_pass_by_primitive(tmp_path):
    profile = _script("profile_onednn")
    warm = ("onednn_verbose,v1,primitive,exec,cpu,reorder,jit:uni,undef,src:f32::blocked:acdb::f0 "
            "dst:f32::blocked:Acdb64a::f0,attr-scratchpad:user,,64x3x7x7,9.0")
    conv = ("onednn_verbose,v1,primitive,exec,cpu,convolution,brg_conv_fwd:avx512_core,"
            "forward_training,src:f32::blocked:acdb::f0 wei:f32:a:blocked:Acdb64a::f0 "
            "dst:f32::blocked:acdb::f0,attr-scratchpad:user,alg:convolution_direct,"
            "mb1_ic3oc64_ih64oh32kh7sh2dh0ph3_iw64ow32kw7sw2dw0pw3,2.5")
    events = profile._parse("\n".join([warm, profile.MARK, warm.replace("9.0", "0.5"), conv]))
    assert [(e["kind"], e["ms"]) for e in events] == [("reorder", 0.5), ("convolution", 2.5)]
    assert profile._formats(events[0]["formats"]) == "src f32 acdb, dst f32 Acdb64a"
    assert events[1]["shape"].startswith("mb1_ic3oc64")


@pytest.mark.parametrize("stage", [0, 3])
def test_coarse_paths_zeroes_one_path_as_zero_weights_do(stage, monkeypatch):
    """benchmarks/coarse_paths.py: a path switched off computes what the model computes with
    that path's adapting convolution zeroed by hand (its feature is then zero), it changes the
    output, and the path comes back afterwards."""
    import rnlib

    probe = _coarse_paths(monkeypatch)
    torch.manual_seed(0)
    model = rnlib.build_model("refinenet", num_classes=3, backbone="resnet18",
                              widths=(16, 16)).eval()
    by_hand = rnlib.build_model("refinenet", num_classes=3, backbone="resnet18",
                                widths=(16, 16)).eval()
    by_hand.load_state_dict(model.state_dict())
    torch.nn.init.zeros_(by_hand.decoder.adapt[str(stage)].weight)
    images = torch.randn(2, 3, 64, 64)
    with torch.inference_mode():
        before = model(images)
        with probe.path_zeroed(model, stage):
            off = model(images)
        torch.testing.assert_close(off, by_hand(images))
        assert not torch.allclose(off, before)
        torch.testing.assert_close(model(images), before)


def test_coarse_paths_gradient_norms_reach_every_path_and_stage(monkeypatch):
    """The gradient norms are measured at all four paths and stages, on a copy: the model's own
    weights get no gradient and its batch-norm statistics do not move."""
    import rnlib

    probe = _coarse_paths(monkeypatch)
    torch.manual_seed(0)
    model = rnlib.build_model("refinenet", num_classes=3, backbone="resnet18",
                              widths=(16, 16)).eval()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    batches = [(torch.randn(2, 3, 64, 64), torch.randint(0, 3, (2, 64, 64)))]
    norms = probe.gradient_norms(model, batches)
    assert sorted(norms) == sorted([f"path layer{i}" for i in range(1, 5)]
                                   + [f"layer{i}" for i in range(1, 5)])
    assert all(0 < v < float("inf") for v in norms.values())
    assert all(p.grad is None for p in model.parameters()) and not model.training
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, state[key])


def test_coarse_paths_rewrites_its_tables_and_keeps_the_reading(tmp_path, monkeypatch):
    probe = _coarse_paths(monkeypatch)
    out = tmp_path / "coarse_paths.md"
    probe.write_keeping_verdict(out, "# tables, first run\n")
    assert out.read_text() == "# tables, first run\n"
    out.write_text(out.read_text() + f"\n{probe.VERDICT}\n\nwhat they mean\n")
    probe.write_keeping_verdict(out, "# tables, second run\n")
    assert out.read_text() == f"# tables, second run\n\n{probe.VERDICT}\n\nwhat they mean\n"


def test_coarse_paths_inside_blocks_matches_a_hand_computation(monkeypatch):
    """The share of live units at CRP's input of layer4's block, and the cascade's term over the
    backbone's in layer3's block's fusion, as computed step by step from the modules."""
    import rnlib

    probe = _coarse_paths(monkeypatch)
    torch.manual_seed(0)
    model = rnlib.build_model("refinenet", num_classes=3, backbone="resnet18",
                              widths=(16, 16)).eval()
    images = torch.randn(2, 3, 64, 64)
    inside = probe.inside_blocks(model, [(images, None)])
    assert sorted(inside) == sorted([f"live layer{i}" for i in range(1, 5)]
                                    + [f"cascade/backbone layer{i}" for i in range(1, 4)])
    decoder = model.decoder
    with torch.inference_mode():
        features = model.backbone(images)
        coarsest = decoder.blocks[0].adapt[0](decoder.adapt["3"](features[3]))
        first = decoder.blocks[0]([decoder.adapt["3"](features[3])])
        backbone = decoder.blocks[1].adapt[0](decoder.adapt["2"](features[2]))
        ratio = decoder.blocks[1].fuse.convs[1](first).norm() / \
            decoder.blocks[1].fuse.convs[0](backbone).norm()
    assert inside["live layer4"] == pytest.approx(float((coarsest > 0).float().mean()))
    assert inside["cascade/backbone layer3"] == pytest.approx(float(ratio), rel=1e-4)


def test_coarse_paths_measures_a_model_with_fewer_paths_and_reports_dashes(monkeypatch):
    """A variant that takes layer1 and layer2 only is measured at the parts it has; the table
    shows "-" for the paths and blocks it does not have, not a number."""
    import rnlib

    probe = _coarse_paths(monkeypatch)
    torch.manual_seed(0)
    model = rnlib.build_model("refinenet", num_classes=3, backbone="resnet18", widths=(16, 16),
                              stages=(0, 1)).eval()
    assert probe.paths(model) == [(0, "layer1"), (1, "layer2")]
    assert probe.block_names(model) == ["layer2", "layer1"]
    batches = [(torch.randn(2, 3, 64, 64), torch.randint(0, 3, (2, 64, 64)))]
    norms = probe.gradient_norms(model, batches)
    assert sorted(norms) == ["layer1", "layer2", "path layer1", "path layer2"]
    result = {"as trained": 50.0, "path layer1 off": 30.0, "seed": 0}
    assert probe.show(probe.mean([result], "path layer1 off"), ".1f") == "30.0"
    assert probe.show(probe.mean([result], "path layer4 off"), ".1f") == "-"


def test_coarse_paths_reuses_a_measurement_while_its_checkpoint_is_unchanged(tmp_path,
                                                                              monkeypatch):
    probe = _coarse_paths(monkeypatch)
    calls = []
    monkeypatch.setattr(probe, "probe", lambda config, folder, batches: calls.append(1) or
                        {"as trained": 40.0 + len(calls)})
    (tmp_path / "last.pt").write_bytes(b"a checkpoint")
    assert probe.measured(None, tmp_path, []) == {"as trained": 41.0}
    assert probe.measured(None, tmp_path, []) == {"as trained": 41.0} and len(calls) == 1
    (tmp_path / "last.pt").write_bytes(b"another checkpoint")
    os.utime(tmp_path / "last.pt", ns=(1, 1))  # a new run: measured again
    assert probe.measured(None, tmp_path, []) == {"as trained": 42.0}


def test_atrous_speed_times_three_forms_of_one_convolution():
    """benchmarks/atrous_speed.py compares like with like: the three variants of a rate hold
    the same weights and give the same map (bf16 to its rounding)."""
    variants = _script("atrous_speed")._variants(12)
    x = torch.randn(1, 2048, 16, 16)
    with torch.inference_mode():
        fp32, native, taps = [run(x.to(dtype)).float() for run, dtype in variants.values()]
    scale = fp32.abs().max()
    assert (native - fp32).abs().max() < 0.03 * scale and (taps - fp32).abs().max() < 0.03 * scale
    assert variants["bf16 stacked taps"][0].__name__ == "taps"  # on any CPU, whatever it picks


def test_profile_bf16_times_each_model_at_each_size_of_its_step(monkeypatch):
    """benchmarks/profile_bf16.py's size table: one row per model and (side, batch), with the
    bf16 / fp32 ratio of the medians that rnlib.bench.alternate_train_steps gives."""
    from rnlib import bench

    script = _script("profile_bf16")
    monkeypatch.setattr(script, "STEPS", [(32, 1), (48, 2)])
    monkeypatch.setattr(script.rnlib, "build_model", lambda *a, **k: torch.nn.Conv2d(3, 3, 1))
    sizes = []

    def alternate(model, size, batch, repeats):
        sizes.append((size, batch))
        return {None: 200.0, torch.bfloat16: 110.0}

    monkeypatch.setattr(bench, "alternate_train_steps", alternate)
    table = script.size_table(repeats=2)
    assert sizes == [((32, 32), 1), ((48, 48), 2)] * 2
    assert "| LW-RefineNet-50 | 48x48 | 2 | 200 | 110 | 0.55 |" in table
    assert "| FCN-8s-50 | 32x32 | 1 | 200 | 110 | 0.55 |" in table
