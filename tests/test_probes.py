"""The probe datasets (rnlib.data.probes) draw what they promise, the ``shortcuts`` option of
RefineNet's blocks drops their identity paths, and benchmarks/probes.py runs end to end."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from rnlib.blocks import RCU, ChainedResidualPooling
from rnlib.cli import main
from rnlib.config import make_config
from rnlib.data import load_source, probes
from rnlib.data.drawing import segment
from rnlib.data.generated import generated_indices
from rnlib.data.synthetic import make_sample as shapes_sample
from rnlib.models import build_model
from rnlib.runs import make_source

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _of_bin(probe, b, count=3, size=128):
    """``count`` masks of bin ``b`` (seed 0)."""
    nbins = len(probes.BINS[probe])
    return [probes.make_sample(probe, 0, b + nbins * k, size)[1] for k in range(count)]


def _components(mask: np.ndarray) -> list[int]:
    """The areas of the 4-connected regions of ``mask > 0`` (labels spread to their largest
    neighbour until nothing changes)."""
    on = mask > 0
    labels = np.where(on, np.arange(1, on.size + 1).reshape(on.shape), 0)
    while True:
        padded = np.pad(labels, 1)
        spread = np.maximum.reduce([labels, padded[:-2, 1:-1], padded[2:, 1:-1],
                                    padded[1:-1, :-2], padded[1:-1, 2:]]) * on
        if (spread == labels).all():
            return np.unique(labels[on], return_counts=True)[1].tolist()
        labels = spread


@pytest.mark.parametrize("probe", probes.PROBES)
def test_images_are_deterministic_per_seed_and_index_and_not_shapes(probe):
    image, mask = probes.make_sample(probe, 3, 7, 64)
    again = probes.make_samples(probe, 3, 2, 64, start=6)
    assert (again[0][1] == image).all() and (again[1][1] == mask).all()
    assert not (probes.make_sample(probe, 3, 8, 64)[0] == image).all()
    assert not (probes.make_sample(probe, 4, 7, 64)[0] == image).all()
    assert image.shape == (64, 64, 3) and image.dtype == np.uint8 and mask.shape == (64, 64)
    assert not (shapes_sample(3, 7)[0][:64, :64] == image).all()


@pytest.mark.parametrize("probe", probes.PROBES)
def test_each_probe_holds_its_classes_and_nothing_else(probe):
    masks = np.stack([probes.make_sample(probe, 0, i)[1] for i in range(8)])
    assert set(np.unique(masks)) == set(range(len(probes.CLASSES[probe])))


@pytest.mark.parametrize("width", probes.WIDTHS)
def test_a_line_is_as_wide_as_its_width(width):
    yy, xx = np.mgrid[0:32, 0:32].astype(np.float32)
    win, on = segment(yy, xx, np.array([10.3, 2.0]), np.array([10.3, 29.0]), width)
    mask = np.zeros((32, 32), bool)
    mask[win] = on
    assert (mask[:, 5:25].sum(0) == width).all()  # across its direction


def test_detail_lines_have_the_width_of_their_bin():
    """Area over half the perimeter is a strip's width (w / (|cos| + |sin|) at an angle)."""
    ratios = []
    for b, width in enumerate(probes.WIDTHS):
        estimates = []
        for mask in _of_bin("detail", b, count=6):
            on = np.pad(mask > 0, 1)
            edges = (on[1:] != on[:-1]).sum() + (on[:, 1:] != on[:, :-1]).sum()
            estimates.append(on.sum() / (edges / 2))
        ratios.append(float(np.median(estimates)))
        assert 0.6 * width <= ratios[-1] <= 1.2 * width, (width, estimates)
    assert ratios == sorted(ratios)


@pytest.mark.parametrize("b,radius", list(enumerate(probes.RADII)))
def test_context_discs_and_boxes_have_the_area_of_their_radius(b, radius):
    for mask in _of_bin("context", b, count=2):
        for label in (1, 2):
            areas = _components(mask == label)
            assert all(abs(a - np.pi * radius**2) <= 0.05 * np.pi * radius**2 + 8 for a in areas)
        assert _components(mask)  # at least one object
    assert probes.bin_of("context", b + 3) == b


@pytest.mark.parametrize("b,bounds", list(enumerate(probes.SIZES)))
def test_scale_objects_are_as_large_as_their_bin(b, bounds):
    low, high = bounds
    for mask in _of_bin("scale", b, count=3):
        diameters = [2 * (a / np.pi) ** 0.5 for a in _components(mask)]
        assert diameters and all(low - 1.5 <= d <= high + 1.5 for d in diameters), diameters


@pytest.mark.parametrize("call,message", [
    (lambda: probes.make_sample("texture", 0, 0), "unknown probe 'texture'"),
    (lambda: probes.make_sample("detail", 0, 0, 16), "size must be a whole number"),
    (lambda: probes.make_samples("scale", 0, 0, 64), "count must be a whole number >= 1"),
    (lambda: load_source("probe-context", "train", size=8), "size must be a whole number"),
    (lambda: load_source("probe-context", "dev", count=2, size=32), "have splits train, val"),
    (lambda: make_config(dataset="probe-scale", data_options={"width": 2}),
     "which dataset 'probe-scale' does not take"),
])
def test_bad_options_get_one_clear_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_a_probe_is_a_dataset_by_name_cached_and_split_like_shapes(tmp_path):
    source = load_source("probe-detail", "test", count=4, size=32, root=tmp_path)
    assert len(source) == 4 and source.classes == ("background", "line")
    assert (tmp_path / "probe-detail" / "test-4-32px-seed0" / "dataset_info.json").exists()
    index = generated_indices("test", 4)[2]
    _, labels = source[2]
    assert (labels == probes.make_sample("detail", 0, index, 32)[1]).all()
    config = make_config(dataset="probe-detail", data_options={"count": 16, "size": 32,
                                                               "root": str(tmp_path)})
    assert len(make_source(config, "val")) == 64  # held out as Shapes': at least 64


def test_rnlib_data_makes_a_probe_and_refuses_a_bad_size_in_one_line(tmp_path, capsys):
    main(["data", "probe-context", "--count", "8", "--size", "32", "--splits", "train", "test",
          "--data-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert "probe-context/train-8-32px-seed0: 8 samples; classes: background, disc, box" in out
    assert "probe-context/test-64-32px-seed0: 64 samples" in out  # as training reads it
    with pytest.raises(SystemExit, match="probe-scale's size must be a whole number"):
        main(["data", "probe-scale", "--size", "8", "--data-dir", str(tmp_path)])


def test_rcu_and_crp_without_shortcut_drop_only_the_identity_path():
    torch.manual_seed(0)
    x = torch.randn(1, 4, 8, 8)
    rcu, plain_rcu = RCU(4), RCU(4, shortcut=False)
    plain_rcu.load_state_dict(rcu.state_dict())
    assert torch.allclose(rcu(x), plain_rcu(x) + x)
    crp, chain = ChainedResidualPooling(4, 2), ChainedResidualPooling(4, 2, shortcut=False)
    chain.load_state_dict(crp.state_dict())
    last = crp.convs[1](crp.pool(crp.convs[0](crp.pool(x.relu()))))
    assert torch.allclose(chain(x), last)
    assert torch.allclose(crp(x), x.relu() + crp.convs[0](crp.pool(x.relu())) + last)


def test_refinenet_takes_shortcuts_false_with_the_same_weights():
    kw = dict(num_classes=3, backbone="resnet18", widths=(16, 16))
    torch.manual_seed(0)
    with_, without = build_model("refinenet", **kw), build_model("refinenet", shortcuts=False,
                                                                  **kw)
    without.load_state_dict(with_.state_dict())  # the same weights: only the sums differ
    x = torch.randn(1, 3, 64, 64)
    assert not torch.allclose(with_.eval()(x), without.eval()(x))
    with pytest.raises(ValueError, match="residual_init='zero' with shortcuts=False"):
        build_model("refinenet", shortcuts=False, residual_init="zero", **kw)


@pytest.fixture
def script(monkeypatch, tmp_path):
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # it imports coarse_paths from beside it
    monkeypatch.setenv("RNLIB_DATA_DIR", str(tmp_path / "data"))
    spec = importlib.util.spec_from_file_location("probes_script", BENCHMARKS / "probes.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_detail_probe_holds_fcn4s_the_equal_output_stride_control(script):
    assert list(script.contenders("detail")) == ["RefineNet (4-cascade)", "FCN-8s", "FCN-4s",
                                                 "Dilated OS8"]
    assert script.contenders("detail")["FCN-4s"].model == "fcn4s"


@pytest.mark.parametrize("probe,seeds", [("detail", ["0"]), ("context", ["0"]),
                                         ("scale", ["0"]), ("identity", ["0", "1"])])
def test_probe_script_writes_every_contender_and_bin(script, probe, seeds, tmp_path):
    out = tmp_path / "probe.md"
    assert script.main(["--probe", probe, "--seeds", *seeds, "--steps", "1", "--count", "8",
                        "--size", "32", "--runs", str(tmp_path / "runs"), "--out",
                        str(out)]) == 0
    text = out.read_text()
    assert f"probes.py --probe {probe} --seeds {' '.join(seeds)} --steps 1" in text
    header = next(line for line in text.splitlines() if line.startswith("| contender"))
    assert all(f" {m} |" in header for m in script.metrics(probe))
    for name in script.contenders(probe):
        assert f"| {name} | {len(seeds)} |" in text
    claim, *others = script.contenders(probe)
    for other in others:
        assert f"| {other} | {script.metrics(probe)[0]} |" in text  # its margin
    records = json.loads((tmp_path / "probe.json").read_text())["results"]
    assert {name: [r["seed"] for r in rs] for name, rs in records.items()} == {
        name: [int(s) for s in seeds] for name in script.contenders(probe)}  # quotable per seed
    row = next(line for line in text.splitlines() if line.startswith(f"| {claim} |"))
    assert (" ± " in row) == (len(seeds) > 1)  # the spread over seeds, once there are several
