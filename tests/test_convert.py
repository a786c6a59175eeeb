"""rnlib.convert: the authors' checkpoints in rnlib, tested offline.

Three kinds of checks: the table (every tensor reaches the module it names, and back), the
errors (a key missing, extra or misshapen is named), and the function: with random weights in
the authors' layout, rnlib's converted model computes the logits of an independent functional
implementation of their forward pass (rnlib.convert.reference).
"""

from __future__ import annotations

import argparse

import pytest
import torch
from torch import nn

import rnlib
from rnlib import convert
from rnlib.cli.convert import add_convert_command
from rnlib.convert import (
    ARCHITECTURES,
    convert_checkpoint,
    convert_state_dict,
    guess_architecture,
    key_table,
    load_authors_model,
    num_classes_of,
    to_authors_state_dict,
)
from rnlib.convert.reference import authors_forward, random_authors_state

K = 3  # classes: small, the classifier's shape is all it changes
TENSORS = {"lw-50": 346, "lw-101": 652, "lw-152": 958, "refinenet-101": 712,
           "refinenet-152": 1018}


def known_state(arch: str, num_classes: int = K) -> dict[str, torch.Tensor]:
    """The authors' keys and shapes from the table, tensor i filled with the value i.
    Each is a stride-0 view of one number: the shapes are real, the memory is not."""
    state = {}
    for i, e in enumerate(key_table(arch, num_classes)):
        dtype = torch.long if e.authors.endswith("num_batches_tracked") else torch.float32
        state[e.authors] = torch.tensor(i, dtype=dtype).expand(e.shape)
    return state


def meta_model(arch: str, num_classes: int = K) -> nn.Module:
    spec = ARCHITECTURES[arch]
    with torch.device("meta"):
        return rnlib.build_model(spec.model, num_classes=num_classes, backbone=spec.backbone)


def module_kind(authors_key: str) -> type[nn.Module]:
    """What the authors' name says the tensor belongs to."""
    leaf = authors_key.rsplit(".", 1)[1]
    if leaf in ("running_mean", "running_var", "num_batches_tracked"):
        return nn.BatchNorm2d
    owner = authors_key.rsplit(".", 2)[-2]
    return nn.BatchNorm2d if owner.startswith("bn") or owner == "1" else nn.Conv2d


# --- the table -----------------------------------------------------------------------------

@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_table_fits_rnlib_models_key_for_key_and_shape_for_shape(arch):
    table = key_table(arch, K)
    assert len(table) == TENSORS[arch]
    assert len({e.authors for e in table}) == len({e.rnlib for e in table}) == len(table)
    rnlib_shapes = {k: tuple(v.shape) for k, v in meta_model(arch).state_dict().items()}
    assert {e.rnlib: e.shape for e in table} == rnlib_shapes


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_every_tensor_arrives_at_the_module_the_table_names_and_round_trips(arch):
    state = known_state(arch)
    converted = convert_state_dict(state, arch)
    model = meta_model(arch)
    model.load_state_dict(converted, strict=True, assign=True)
    for i, e in enumerate(key_table(arch, K)):
        module_name, leaf = e.rnlib.rsplit(".", 1)
        module = model.get_submodule(module_name)
        assert isinstance(module, module_kind(e.authors)), (e.authors, e.rnlib, module)
        if isinstance(module, nn.Conv2d) and leaf == "weight":
            assert module.kernel_size == e.shape[-2:], (e.authors, e.rnlib)
        tensor = getattr(module, leaf)  # assign=True: the very tensor of the authors' key
        assert tensor.shape == e.shape, (e.authors, e.rnlib)
        assert tensor.untyped_storage().data_ptr() == state[e.authors].untyped_storage().data_ptr()
        assert tensor[(0,) * tensor.ndim].item() == i, (e.authors, e.rnlib)
    back = to_authors_state_dict(converted, arch)
    assert list(back) == list(state)
    assert all(back[k] is state[k] for k in state)  # key for key, the same tensors


def test_a_real_model_loads_with_strict_true_and_holds_each_value():
    state = known_state("lw-50")
    model = rnlib.build_model("refinenet-lw", num_classes=K, backbone="resnet50")
    model.load_state_dict(convert_state_dict(state), strict=True)  # arch guessed
    ours = model.state_dict()
    for i, e in enumerate(key_table("lw-50", K)):
        assert bool((ours[e.rnlib] == i).all()), e


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_guess_architecture_and_num_classes(arch):
    state = known_state(arch, num_classes=21)
    assert guess_architecture(state) == arch
    assert num_classes_of(state) == 21


def test_every_release_names_an_architecture_and_its_classes():
    assert {r.arch for r in convert.RELEASES} == {"lw-50", "lw-101", "lw-152", "refinenet-101"}
    assert {r.num_classes for r in convert.RELEASES} == {7, 21, 40, 60}
    assert all(r.url.startswith("https://") for r in convert.RELEASES)


# --- errors --------------------------------------------------------------------------------

def test_a_missing_key_is_named_with_the_count():
    state = known_state("lw-50")
    del state["layer3.2.conv2.weight"], state["mflow_conv_g2_pool.0.3_outvar_dimred.weight"]
    with pytest.raises(ValueError, match="2 missing keys") as err:
        convert_state_dict(state, "lw-50")
    assert "'layer3.2.conv2.weight'" in str(err.value)
    assert "'mflow_conv_g2_pool.0.3_outvar_dimred.weight'" in str(err.value)


def test_many_missing_keys_show_the_first_few_and_how_many_more():
    state = {k: v for k, v in known_state("lw-50").items()
             if not k.startswith(("layer4.1.", "layer4.2."))}
    with pytest.raises(ValueError, match=r"30 missing keys: .*, \.\.\. and 24 more"):
        convert_state_dict(state, "lw-50")


def test_an_unexpected_key_is_named():
    state = known_state("refinenet-101")
    state["aux_clf.weight"] = torch.zeros(3, 256, 1, 1)
    with pytest.raises(ValueError, match=r"1 unexpected key: 'aux_clf.weight'"):
        convert_state_dict(state, "refinenet-101")


def test_a_wrong_shape_is_named_with_the_expected_and_the_found_shape():
    state = known_state("lw-50")
    state["p_ims1d2_outl2_dimred.weight"] = torch.zeros(256, 1024, 3, 3)
    state["clf_conv.bias"] = torch.zeros(K + 1)
    with pytest.raises(ValueError) as err:
        convert_state_dict(state, "lw-50")
    message = str(err.value)
    assert "2 keys of the wrong shape" in message
    assert "'p_ims1d2_outl2_dimred.weight' (expected (256, 1024, 1, 1), found (256, 1024, 3, 3))" \
        in message
    assert f"'clf_conv.bias' (expected ({K},), found ({K + 1},))" in message


def test_the_wrong_architecture_names_the_right_one():
    with pytest.raises(ValueError, match=r"fit 'lw-101' instead: pass arch='lw-101'"):
        convert_state_dict(known_state("lw-101"), "lw-50")


def test_an_unknown_architecture_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown architecture 'lw-34'.*lw-50, lw-101"):
        convert_state_dict(known_state("lw-50"), "lw-34")


def test_a_network_that_fits_no_architecture_is_refused():
    state = {k: v for k, v in known_state("lw-101").items()
             if not k.startswith(tuple(f"layer3.{i}." for i in range(10, 23)))}
    with pytest.raises(ValueError, match=r"stages have \[3, 4, 10, 3\] blocks.*fits none"):
        guess_architecture(state)
    rnlib_state = meta_model("lw-50").state_dict()
    with pytest.raises(ValueError, match="already an rnlib state dict"):
        guess_architecture(rnlib_state)
    with pytest.raises(ValueError, match="MobileNet-v2"):
        guess_architecture({"segm.weight": torch.zeros(21, 256, 3, 3)})


def test_dataparallel_prefix_and_nested_checkpoints_are_accepted():
    state = known_state("lw-50")
    expected = convert_state_dict(state)
    prefixed = {f"module.{k}": v for k, v in state.items()}
    for wrapped in (prefixed, {"segmenter": prefixed, "epoch_start": 7, "best_val": 0.8},
                    {"state_dict": state}, {"model": prefixed, "optimisers": [{}]}):
        converted = convert_state_dict(wrapped)
        assert list(converted) == list(expected)
        assert all(converted[k] is expected[k] for k in expected)


def test_missing_num_batches_tracked_are_filled_with_zero_silently():
    state = {k: v for k, v in known_state("refinenet-101").items()
             if not k.endswith("num_batches_tracked")}
    converted = convert_state_dict(state, "refinenet-101")
    counters = [k for k in converted if k.endswith("num_batches_tracked")]
    assert len(counters) == 104  # one per batch norm of ResNet-101
    assert all(converted[k].dtype == torch.long and converted[k].item() == 0 for k in counters)


def test_to_authors_names_what_does_not_fit():
    rnlib_state = dict(meta_model("lw-50").state_dict())
    del rnlib_state["decoder.adapt.3.weight"]
    with pytest.raises(ValueError, match=r"1 missing key: 'decoder.adapt.3.weight'"):
        to_authors_state_dict(rnlib_state, "lw-50")


# --- files and the command line ------------------------------------------------------------

def test_a_file_with_pickled_objects_is_refused_with_what_to_do(tmp_path):
    path = tmp_path / "old.pth.tar"
    torch.save({"state_dict": known_state("lw-50"), "args": argparse.Namespace(lr=1)}, path)
    with pytest.raises(ValueError, match=r"objects besides tensors \(argparse.Namespace\)"
                                         r".*weights_only=True.*weights_only=False"):
        load_authors_model(path)
    (tmp_path / "junk.pth").write_bytes(b"<html>not found</html>")
    with pytest.raises(ValueError, match="damaged or not a PyTorch file"):
        convert_checkpoint(tmp_path / "junk.pth", tmp_path / "out.pt")
    with pytest.raises(FileNotFoundError, match="download the authors' weights yourself"):
        load_authors_model(tmp_path / "absent.pth")


def test_convert_checkpoint_writes_what_rnlib_loads(tmp_path):
    from rnlib.runs import load_trained

    src, dst = tmp_path / "rf_lw50_voc.pth.tar", tmp_path / "out" / "lw50.pt"
    state = {f"module.{k}": v for k, v in known_state("lw-50", 21).items()
             if not k.endswith("num_batches_tracked")}  # as an old DataParallel file
    # the pre-1.6 file format, as the 2018 releases
    torch.save({"segmenter": state, "epoch_start": 3}, src, _use_new_zipfile_serialization=False)
    info = convert_checkpoint(src, dst)
    assert info["architecture"] == "lw-50" and info["num_classes"] == 21
    assert info["tensors"] == TENSORS["lw-50"] and info["filled_num_batches_tracked"] == 53
    saved = torch.load(dst, weights_only=True)
    assert saved["converted_from"]["file"] == src.name and len(saved["converted_from"]["sha256"]) == 64
    assert saved["config"]["dataset"] == "voc" and saved["config"]["scale"] == [0.5, 2.0]
    model, config = load_trained(dst)  # rnlib's own loader: strict, weights_only
    assert (config.model, config.backbone, config.num_classes) == ("refinenet-lw", "resnet50", 21)
    assert bool((model.decoder.classifier.bias == len(key_table("lw-50", 21)) - 1).all())
    loaded = load_authors_model(src)
    assert not loaded.training
    assert torch.equal(loaded.backbone.layer2[1].conv2.weight, model.backbone.layer2[1].conv2.weight)


def test_weights_of_a_dataset_rnlib_does_not_load_name_no_dataset(tmp_path):
    from rnlib.cli import main

    src, dst = tmp_path / "lw50_nyu.pth", tmp_path / "lw50.pt"
    torch.save(known_state("lw-50", 5), src)
    convert_checkpoint(src, dst)
    assert torch.load(dst, weights_only=True)["config"]["dataset"] is None
    with pytest.raises(SystemExit, match="no dataset is named.*pass --dataset"):
        main(["eval", str(dst)])  # not a folder dataset in the current directory


def test_the_convert_command_prints_one_line(tmp_path, capsys):
    src, dst = tmp_path / "rf101.pth", tmp_path / "rf101.pt"
    torch.save(known_state("refinenet-101", 5), src)
    parser = argparse.ArgumentParser(prog="rnlib")
    add_convert_command(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["convert", str(src), "--out", str(dst), "--arch", "refinenet-101"])
    args.run(args)
    out = capsys.readouterr().out.strip().splitlines()
    assert out == [f"converted refinenet-101: 5 classes, {TENSORS['refinenet-101']} tensors "
                   f"-> {dst}"]
    with pytest.raises(SystemExit):
        parser.parse_args(["convert", str(src), "--out", str(dst), "--arch", "rf-34"])


# --- the function: rnlib's model against an independent authors' forward pass -------------

@pytest.mark.parametrize("arch", ["lw-50", "refinenet-101"])
def test_converted_model_computes_the_authors_logits(arch):
    shapes = {e.authors: e.shape for e in key_table(arch, 5)}
    state = random_authors_state(shapes, seed=1)
    model = meta_model(arch, num_classes=5)  # no random init to pay for: the weights are given
    model.load_state_dict(convert_state_dict(state, arch), strict=True, assign=True)
    model.eval()
    for h, w in [(96, 128), (97, 131)]:
        x = torch.randn(1, 3, h, w)
        with torch.no_grad():
            theirs = authors_forward(state, x)  # (1, 5, ceil(h/4), ceil(w/4))
            ours = model.decoder(model.backbone(x))
        assert ours.shape == theirs.shape == (1, 5, (h + 3) // 4, (w + 3) // 4)
        scale = (theirs.max() - theirs.min()).item()
        assert scale > 1.0  # the logits vary: the comparison means something
        assert (ours - theirs).abs().max().item() <= 1e-5 * scale
