"""The shipped backbone: the file its provenance describes, loaded without running code, and
clear errors for weights that cannot serve a backbone."""

import hashlib

import pytest
import torch

import rnlib
from rnlib import weights


def test_the_shipped_glyphs_weights_are_the_ones_their_provenance_describes():
    record = weights.provenance("glyphs")
    path = weights.FOLDER / weights.SHIPPED["glyphs"][1]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == record["sha256"]
    assert path.stat().st_size == record["bytes"] < 25 * 2**20  # fp16: compact
    assert record["val_accuracy"] > 0.8 and "tools/pretrain_backbone.py" in record["command"]
    state = torch.load(path, weights_only=True)  # tensors only: no code runs
    assert not any(k.startswith("fc.") for k in state)


def test_a_model_fine_tunes_from_them():
    model = rnlib.build_model("fcn8s", num_classes=3, backbone="resnet18",
                              pretrained_backbone="glyphs")
    shipped = weights.load_state_dict("glyphs")
    assert torch.equal(model.backbone.stem[0].weight, shipped["conv1.weight"])
    assert torch.equal(model.backbone.layer4[1].bn2.running_var, shipped["layer4.1.bn2.running_var"])


def test_weights_from_a_file(tmp_path):
    import torchvision

    torch.save(torchvision.models.resnet18().state_dict(), tmp_path / "mine.pt")
    model = rnlib.build_model("fcn32s", num_classes=3, backbone="resnet18",
                              pretrained_backbone=str(tmp_path / "mine.pt"))
    assert model.backbone.stem[0].weight.shape == (64, 3, 7, 7)
    torch.save(torchvision.models.resnet34().state_dict(), tmp_path / "other.pt")
    with pytest.raises(ValueError, match="do not fit this ResNet"):
        rnlib.build_model("fcn32s", num_classes=3, backbone="resnet18",
                          pretrained_backbone=str(tmp_path / "other.pt"))

    (tmp_path / "half.pt").write_bytes(b"half a file")
    with pytest.raises(ValueError, match=r"cannot read the backbone weights .*half.pt.*damaged"
                                         r".*state_dict"):
        rnlib.build_model("fcn32s", num_classes=3, backbone="resnet18",
                          pretrained_backbone=str(tmp_path / "half.pt"))
    torch.save({"conv1.weight": torch.zeros(1), "note": object()}, tmp_path / "pickled.pt")
    with pytest.raises(ValueError, match=r"Python objects besides tensors \(object\)"
                                         r".*weights_only=False"):
        rnlib.build_model("fcn32s", num_classes=3, backbone="resnet18",
                          pretrained_backbone=str(tmp_path / "pickled.pt"))


@pytest.mark.parametrize("spec,backbone,words", [
    ("glyphs", "resnet50", "are for resnet18, not resnet50"),
    ("nowhere.pt", "resnet18", "neither 'imagenet'.*nor an existing file"),
    (3, "resnet18", "pretrained_backbone must be"),
])
def test_weights_that_cannot_serve_are_refused_before_building(spec, backbone, words):
    with pytest.raises((ValueError, FileNotFoundError), match=words):
        rnlib.build_model("fcn32s", num_classes=3, backbone=backbone, pretrained_backbone=spec)
