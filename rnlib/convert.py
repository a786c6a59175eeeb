"""The authors' released weights in rnlib: their key names -> rnlib's (``rnlib convert``).

The authors of RefineNet and Light-Weight RefineNet published trained networks. This module
reads a PyTorch state dict saved by their code and renames every tensor to the module of rnlib
that computes the same function, so that ``rnlib.build_model`` loads it with ``strict=True``:

    lw-50          Light-Weight RefineNet, ResNet-50    their rf_lw50    rnlib "refinenet-lw"
    lw-101         Light-Weight RefineNet, ResNet-101   their rf_lw101   rnlib "refinenet-lw"
    lw-152         Light-Weight RefineNet, ResNet-152   their rf_lw152   rnlib "refinenet-lw"
    refinenet-101  RefineNet, ResNet-101                their rf101      rnlib "refinenet"
    refinenet-152  RefineNet, ResNet-152                their RefineNet class, layers [3, 8, 36, 3]

Where the weights were published (the authors' addresses, listed in :data:`RELEASES`):

- Light-Weight RefineNet (Nekrasov, Shen, Reid, BMVC 2018), repository
  github.com/DrSleep/light-weight-refinenet, table ``models_urls`` of its ``models/resnet.py``,
  files on cloudstor.aarnet.edu.au: ResNet-50/101/152 trained on PASCAL VOC (21 classes), on
  PASCAL Person-Part (7 classes) and on NYUv2 (40 classes); ResNet-101/152 on PASCAL-Context
  (60 classes). On 14 July 2020 the VOC ResNet-50 file was replaced by weights trained on
  COCO+BSD+VOC (82.04% mean IoU on VOC validation, single scale); the BMVC file was at
  https://cloudstor.aarnet.edu.au/plus/s/2E1KrdF2Rfc5khB/download. Their MobileNet-v2
  networks are not served: rnlib has no MobileNet backbone.
- RefineNet-101 trained on PASCAL VOC (80.5% mean IoU on validation, single scale), repository
  github.com/DrSleep/refinenet-pytorch:
  https://cloudstor.aarnet.edu.au/plus/s/Owmttk9bdPROwc6/download. It is the only RefineNet
  (as opposed to Light-Weight RefineNet) that the authors published for PyTorch.
- The original release, github.com/guosheng/refinenet (MATLAB), has RefineNet-101 and -152
  for PASCAL VOC 2012, Cityscapes, NYUDv2, Person-Part, PASCAL-Context, SUN-RGBD and ADE20K on
  Google Drive and Baidu Pan. Those are MatConvNet models, not PyTorch state dicts, and this
  module does not read them (those of five datasets also use an "improved" residual pooling).
  ``refinenet-152`` is the layout that the authors' PyTorch code gives with ResNet-152
  stages; no PyTorch weights in it were published.

rnlib never downloads any of these by itself: fetch a file yourself, then
``rnlib convert FILE --out model.pt`` (or :func:`load_authors_model`). Files are read with
``torch.load(..., weights_only=True)``, so opening one runs no code. The weights are the
authors': their repositories license their work for academic use and ask commercial users to
contact them; rnlib's MIT licence does not extend to the weights. Their networks expect RGB
images scaled to [0, 1] and normalised with the ImageNet mean and standard deviation, as
``rnlib.data.eval_transform`` does.

The conversion is a table, :func:`key_table`, generated for each architecture from its ResNet
stage depths and its kind (light or full); ``tests/test_convert.py`` checks that every tensor
arrives at the module the table names, and that rnlib's model then computes the same logits as
an independent implementation of the authors' forward pass.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import torch
from torch import nn

__all__ = ["ARCHITECTURES", "Architecture", "RELEASES", "Release", "Entry", "key_table",
           "convert_state_dict", "to_authors_state_dict", "guess_architecture", "num_classes_of",
           "load_authors_model", "convert_checkpoint", "add_convert_command"]


@dataclass(frozen=True)
class Architecture:
    """One network of the authors, and the rnlib model that computes the same function."""

    name: str
    model: str  # rnlib's registry name
    backbone: str  # rnlib's backbone name
    depths: tuple[int, int, int, int]  # bottleneck blocks in layer1..layer4
    light: bool  # Light-Weight RefineNet: 1x1 convolutions, no RCUs
    authors: str  # where their code builds it


ARCHITECTURES: dict[str, Architecture] = {a.name: a for a in [
    Architecture("lw-50", "refinenet-lw", "resnet50", (3, 4, 6, 3), True,
                 "rf_lw50, DrSleep/light-weight-refinenet models/resnet.py"),
    Architecture("lw-101", "refinenet-lw", "resnet101", (3, 4, 23, 3), True,
                 "rf_lw101, DrSleep/light-weight-refinenet models/resnet.py"),
    Architecture("lw-152", "refinenet-lw", "resnet152", (3, 8, 36, 3), True,
                 "rf_lw152, DrSleep/light-weight-refinenet models/resnet.py"),
    Architecture("refinenet-101", "refinenet", "resnet101", (3, 4, 23, 3), False,
                 "rf101, DrSleep/refinenet-pytorch models/resnet.py"),
    Architecture("refinenet-152", "refinenet", "resnet152", (3, 8, 36, 3), False,
                 "RefineNet(Bottleneck, [3, 8, 36, 3]), DrSleep/refinenet-pytorch "
                 "models/resnet.py (no weights published)"),
]}


class Release(NamedTuple):
    """One file of weights the authors published for PyTorch (rnlib never downloads it)."""

    arch: str
    dataset: str
    num_classes: int
    url: str


_CLOUDSTOR = "https://cloudstor.aarnet.edu.au/plus/s/{}/download"
# From the authors' models/resnet.py (``models_urls``) of each repository.
RELEASES: tuple[Release, ...] = tuple(Release(a, d, k, _CLOUDSTOR.format(u)) for a, d, k, u in [
    ("lw-50", "PASCAL VOC (trained on COCO+BSD+VOC, 2020)", 21, "xp7GcVKC0GbxhTv"),
    ("lw-101", "PASCAL VOC", 21, "CPRKWiaCIDRdOwF"),
    ("lw-152", "PASCAL VOC", 21, "2w8bFOd45JtPqbD"),
    ("lw-50", "PASCAL Person-Part", 7, "mLA7NxVSPjNL7Oo"),
    ("lw-101", "PASCAL Person-Part", 7, "f1tGGpwdCnYS3xu"),
    ("lw-152", "PASCAL Person-Part", 7, "Ql64rWqiTvWGAA0"),
    ("lw-50", "NYUv2", 40, "gE8dnQmHr9svpfu"),
    ("lw-101", "NYUv2", 40, "VnsaSUHNZkuIqeB"),
    ("lw-152", "NYUv2", 40, "EkPQzB2KtrrDnKf"),
    ("lw-101", "PASCAL-Context", 60, "hqmplxWOBbOYYjN"),
    ("lw-152", "PASCAL-Context", 60, "O84NszlYlsu00fW"),
    ("refinenet-101", "PASCAL VOC", 21, "Owmttk9bdPROwc6"),
])

# The released configuration (rnlib's defaults): decoder widths on layer4's path and on the
# others, RCUs per backbone path, output RCUs and pooling blocks per RefineNet block.
WIDTHS = (512, 256)
STAGE_CHANNELS = (256, 512, 1024, 2048)  # bottleneck ResNet layer1..layer4
RCUS, OUT_RCUS, CRP_BLOCKS = 2, 3, 4
BN_TENSORS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
# BatchNorm counts its batches since PyTorch 0.4.1; older files lack the counter, which
# evaluation never reads, so a missing one is filled with 0.
OPTIONAL_SUFFIX = ".num_batches_tracked"
# Training scripts nest the weights: {"segmenter": ...} (the authors'), {"model": ...}, ...
CONTAINER_KEYS = ("state_dict", "model", "segmenter", "model_state_dict", "net", "network")


class Entry(NamedTuple):
    """One tensor: the authors' key, rnlib's key, and its shape."""

    authors: str
    rnlib: str
    shape: tuple[int, ...]


# --- the table -----------------------------------------------------------------------------

@lru_cache(maxsize=32)
def key_table(arch: str, num_classes: int = 21) -> tuple[Entry, ...]:
    """Every tensor of ``arch`` with ``num_classes`` classes: backbone, then block by block.

    The backbone keys are the same on both sides (both are torchvision-style ResNets) but for
    the stem; the decoder's are renamed block by block. The authors count their RefineNet
    blocks g = 1..4 from the coarsest (layer4) on; rnlib's ``decoder.blocks`` are 0..3 in the
    same order, and its ``decoder.adapt`` is keyed by the stage it adapts (3 = layer4).
    """
    spec = _spec(arch)
    return tuple(_backbone(spec.depths)) + tuple(_decoder(spec.light, num_classes))


def _backbone(depths: tuple[int, ...]) -> Iterator[Entry]:
    yield Entry("conv1.weight", "backbone.stem.0.weight", (64, 3, 7, 7))
    yield from _batchnorm("bn1", "backbone.stem.1", 64)
    inplanes = 64
    for stage, depth in enumerate(depths, start=1):
        planes = 64 * 2 ** (stage - 1)
        for b in range(depth):
            key = f"layer{stage}.{b}"
            convs = [(planes, inplanes if b == 0 else 4 * planes, 1, 1),  # conv1, 1x1
                     (planes, planes, 3, 3),  # conv2, 3x3 (carries the stage's stride)
                     (4 * planes, planes, 1, 1)]  # conv3, 1x1
            for i, shape in enumerate(convs, start=1):
                yield Entry(f"{key}.conv{i}.weight", f"backbone.{key}.conv{i}.weight", shape)
                yield from _batchnorm(f"{key}.bn{i}", f"backbone.{key}.bn{i}", shape[0])
            if b == 0:  # the projection shortcut of each stage's first block
                yield Entry(f"{key}.downsample.0.weight", f"backbone.{key}.downsample.0.weight",
                            (4 * planes, inplanes, 1, 1))
                yield from _batchnorm(f"{key}.downsample.1", f"backbone.{key}.downsample.1",
                                      4 * planes)
        inplanes = 4 * planes


def _batchnorm(authors: str, rnlib: str, channels: int) -> Iterator[Entry]:
    for name in BN_TENSORS:
        shape = () if name == "num_batches_tracked" else (channels,)
        yield Entry(f"{authors}.{name}", f"{rnlib}.{name}", shape)


def _decoder(light: bool, num_classes: int) -> Iterator[Entry]:
    k = 1 if light else 3  # kernel size of every decoder convolution but the classifier

    def width(g: int) -> int:  # width of RefineNet block g (1 = coarsest)
        return WIDTHS[0] if g == 1 else WIDTHS[1]

    for g in range(1, 5):
        stage, block, w = 4 - g, f"decoder.blocks.{g - 1}", width(g)
        # the input adaptation from the backbone's width to the block's
        yield Entry(f"p_ims1d2_outl{g}_dimred.weight", f"decoder.adapt.{stage}.weight",
                    (w, STAGE_CHANNELS[stage], k, k))
        if not light:  # adaptation RCUs on the backbone path
            yield from _rcus(f"adapt_stage{g}_b", f"{block}.adapt.0", RCUS, w)
        if g > 1:  # multi-resolution fusion: path 0 from the backbone, path 1 from block g-1
            yield Entry(f"adapt_stage{g}_b2_joint_varout_dimred.weight",
                        f"{block}.fuse.convs.0.weight", (w, w, k, k))
            yield Entry(f"mflow_conv_g{g - 1}_b3_joint_varout_dimred.weight",
                        f"{block}.fuse.convs.1.weight", (w, width(g - 1), k, k))
        for j in range(CRP_BLOCKS):  # chained residual pooling
            yield Entry(f"mflow_conv_g{g}_pool.0.{j + 1}_outvar_dimred.weight",
                        f"{block}.pool.convs.{j}.weight", (w, w, k, k))
        if not light:  # output RCUs
            yield from _rcus(f"mflow_conv_g{g}_b", f"{block}.out", OUT_RCUS, w)
    yield Entry("clf_conv.weight", "decoder.classifier.weight", (num_classes, WIDTHS[1], 3, 3))
    yield Entry("clf_conv.bias", "decoder.classifier.bias", (num_classes,))


def _rcus(authors: str, rnlib: str, count: int, w: int) -> Iterator[Entry]:
    """The authors' RCUBlock (one module holding ``count`` units) -> rnlib's RCUs."""
    for i in range(count):
        unit = f"{authors}.0.{i + 1}"
        yield Entry(f"{unit}_conv.weight", f"{rnlib}.{i}.conv1.weight", (w, w, 3, 3))
        yield Entry(f"{unit}_conv.bias", f"{rnlib}.{i}.conv1.bias", (w,))
        yield Entry(f"{unit}_conv_relu_varout_dimred.weight", f"{rnlib}.{i}.conv2.weight",
                    (w, w, 3, 3))


# --- converting ----------------------------------------------------------------------------

def convert_state_dict(state_dict: Mapping, arch: str | None = None) -> dict[str, torch.Tensor]:
    """The authors' state dict -> rnlib's, for ``build_model(...).load_state_dict(strict=True)``.

    ``state_dict`` may be nested under ``state_dict``/``model``/``segmenter`` and carry
    DataParallel's ``module.`` prefix. ``arch`` is a name of :data:`ARCHITECTURES`; ``None``
    guesses it from the keys. Raises ``ValueError`` naming every missing, unexpected or
    misshapen key. The tensors are shared, not copied.
    """
    state = _unwrap(state_dict)
    arch = guess_architecture(state) if arch is None else _spec(arch).name
    table = key_table(arch, num_classes_of(state))
    _check(state, {e.authors: e.shape for e in table}, arch, "the authors'")
    return {e.rnlib: state[e.authors] if e.authors in state else _zero_count() for e in table}


def to_authors_state_dict(model_state_dict: Mapping, arch: str) -> dict[str, torch.Tensor]:
    """The inverse: rnlib's state dict of ``arch`` -> the authors' key names, e.g. to load an
    rnlib-trained model into their code."""
    state = _unwrap(model_state_dict)
    name = _spec(arch).name
    classifier = state.get("decoder.classifier.weight")
    if classifier is None:
        raise ValueError("no 'decoder.classifier.weight' in this state dict: it is not rnlib's "
                         f"{ARCHITECTURES[name].model}; pass model.state_dict() of a model "
                         "built as rnlib.convert.ARCHITECTURES names")
    table = key_table(name, int(classifier.shape[0]))
    _check(state, {e.rnlib: e.shape for e in table}, name, "rnlib's")
    return {e.authors: state[e.rnlib] if e.rnlib in state else _zero_count() for e in table}


def num_classes_of(state_dict: Mapping) -> int:
    """The number of classes of an authors' state dict, from its classifier ``clf_conv``."""
    state = _unwrap(state_dict)
    for key in ("clf_conv.weight", "clf_conv.bias"):
        if key in state:
            return int(state[key].shape[0])
    raise ValueError("no classifier 'clf_conv.weight' in this state dict, so the number of "
                     "classes is unknown; it is not a checkpoint of the authors' RefineNet "
                     f"(first keys: {_names(list(state)[:5])})")


def guess_architecture(state_dict: Mapping) -> str:
    """The name in :data:`ARCHITECTURES` that an authors' state dict fits, from which keys it
    has (RCUs or not, the kernel of its convolutions) and the depth of its ResNet stages."""
    state = _unwrap(state_dict)
    if any(k.startswith(("backbone.", "decoder.")) for k in state):
        raise ValueError("this is already an rnlib state dict (keys 'backbone.*', "
                         "'decoder.*'): load it with model.load_state_dict, no conversion needed")
    if "segm.weight" in state or "crp1.0.1_outvar_dimred.weight" in state:
        raise ValueError("this is the authors' Light-Weight RefineNet on MobileNet-v2; rnlib has "
                         "no MobileNet-v2 backbone, so it cannot be converted")
    adapt = state.get("p_ims1d2_outl1_dimred.weight")
    if adapt is None:
        raise ValueError("no 'p_ims1d2_outl1_dimred.weight' in this state dict: it is not the "
                         "authors' ResNet RefineNet or Light-Weight RefineNet "
                         f"(first keys: {_names(list(state)[:5])})")
    kernel = adapt.shape[-1]  # 1 in Light-Weight RefineNet, 3 in RefineNet
    has_rcus = "adapt_stage1_b.0.1_conv.weight" in state  # RefineNet only
    depths = tuple(_depth(state, stage) for stage in range(1, 5))
    if (kernel == 3) == has_rcus:
        light = kernel == 1
        for spec in ARCHITECTURES.values():
            if spec.light == light and spec.depths == depths:
                return spec.name
        kind = "Light-Weight RefineNet" if light else "RefineNet"
    else:
        kind = (f"network with {kernel}x{kernel} adaptation convolutions "
                f"{'and' if has_rcus else 'but no'} RCUs")
    known = ", ".join(f"{s.name} ({'light' if s.light else 'full'}, {list(s.depths)})"
                      for s in ARCHITECTURES.values())
    raise ValueError(f"this checkpoint is a {kind} whose ResNet stages have {list(depths)} "
                     f"blocks, which fits none of the architectures rnlib converts: {known}")


def _depth(state: Mapping, stage: int) -> int:
    prefix = f"layer{stage}."
    blocks = {int(k.split(".")[1]) for k in state
              if k.startswith(prefix) and k.split(".")[1].isdigit()}
    return max(blocks) + 1 if blocks else 0


def _spec(arch: str) -> Architecture:
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; rnlib converts "
                         f"{', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[arch]


def _zero_count() -> torch.Tensor:
    return torch.zeros((), dtype=torch.long)


def _unwrap(obj: object) -> dict[str, torch.Tensor]:
    """The state dict inside a checkpoint: unnested, without DataParallel's ``module.``."""
    seen = []
    while isinstance(obj, Mapping) and not _is_state(obj):
        seen.append(list(obj)[:6])
        inner = next((obj[k] for k in CONTAINER_KEYS if isinstance(obj.get(k), Mapping)), None)
        if inner is None:
            raise ValueError(f"no state dict of tensors in this checkpoint (its keys: "
                             f"{_names(list(obj)[:8])}); rnlib looks at the top level and under "
                             f"{', '.join(repr(k) for k in CONTAINER_KEYS)}")
        obj = inner
    if not isinstance(obj, Mapping):
        raise TypeError(f"a state dict is a mapping of names to tensors, got {type(obj).__name__}")
    state = dict(obj)
    if state and all(k.startswith("module.") for k in state):  # saved from nn.DataParallel
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def _is_state(obj: Mapping) -> bool:
    return bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def _check(state: Mapping, expected: dict[str, tuple[int, ...]], arch: str, side: str) -> None:
    """Raise one ValueError naming every key of ``state`` that does not fit ``expected``."""
    missing = [k for k in expected if k not in state and not k.endswith(OPTIONAL_SUFFIX)]
    unexpected = [k for k in state if k not in expected]
    misshapen = [f"{k!r} (expected {tuple(expected[k])}, found {tuple(state[k].shape)})"
                 for k in expected if k in state and tuple(state[k].shape) != expected[k]]
    if not (missing or unexpected or misshapen):
        return
    spec = ARCHITECTURES[arch]
    lines = [f"cannot convert this state dict with {side} key names as {arch!r} "
             f"({spec.authors}; rnlib {spec.model!r} on {spec.backbone}):"]
    if missing:
        lines.append(f"  {_count(missing, 'missing key')}: {_names(missing)}")
    if unexpected:
        lines.append(f"  {_count(unexpected, 'unexpected key')}: {_names(unexpected)}")
    if misshapen:
        lines.append(f"  {_count(misshapen, 'key')} of the wrong shape: {_listing(misshapen)}")
    lines.append(_advice(state, arch, side))
    raise ValueError("\n".join(lines))


def _advice(state: Mapping, arch: str, side: str) -> str:
    if side == "the authors'":
        try:
            guess = guess_architecture(state)
        except ValueError:
            guess = None
        if guess is not None and guess != arch:
            return (f"The keys fit {guess!r} instead: pass arch={guess!r} "
                    f"(rnlib convert --arch {guess}), or leave arch out to guess it.")
        return ("The fix: check that the file is one of the authors' released ResNet networks "
                "and was downloaded whole; a file saved from a modified network needs the named "
                "keys renamed or removed by hand before converting.")
    return (f"The fix: pass the state dict of rnlib.build_model({ARCHITECTURES[arch].model!r}, "
            f"backbone={ARCHITECTURES[arch].backbone!r}, num_classes=...) with its default "
            f"options, the released configuration.")


def _count(items: list, noun: str) -> str:
    return f"{len(items)} {noun}{'' if len(items) == 1 else 's'}"


def _names(keys: list[str], limit: int = 6) -> str:
    return _listing([repr(k) for k in keys], limit)


def _listing(items: list[str], limit: int = 6) -> str:
    more = f", ... and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


# --- files ---------------------------------------------------------------------------------

def load_authors_model(path_or_state_dict: str | os.PathLike | Mapping,
                       arch: str | None = None) -> nn.Module:
    """An rnlib model (in eval mode) holding the authors' weights from a file or a state dict;
    ``arch`` is guessed from the keys when left out."""
    from .models import build_model

    state = _unwrap(_read(path_or_state_dict))
    arch = guess_architecture(state) if arch is None else _spec(arch).name
    spec = ARCHITECTURES[arch]
    converted = convert_state_dict(state, arch)
    model = build_model(spec.model, num_classes=num_classes_of(state), backbone=spec.backbone)
    model.load_state_dict(converted, strict=True)
    return model.eval()


def convert_checkpoint(src: str | os.PathLike | Mapping, dst: str | os.PathLike,
                       arch: str | None = None) -> dict:
    """Convert the authors' file (or state dict) ``src`` into an rnlib checkpoint at ``dst``,
    which ``rnlib.runs.load_trained`` and ``rnlib eval`` read: ``{"model": state dict,
    "config": TrainConfig as plain data, "converted_from": provenance}``. Returns the
    provenance (architecture, classes, tensors, ...)."""
    from .checkpoint import save_checkpoint
    from .config import TrainConfig, plain
    from .models import build_model

    state = _unwrap(_read(src))
    arch = guess_architecture(state) if arch is None else _spec(arch).name
    spec = ARCHITECTURES[arch]
    num_classes = num_classes_of(state)
    converted = convert_state_dict(state, arch)
    with torch.device("meta"):  # rnlib's own model, for its keys and shapes only: no memory
        model = build_model(spec.model, num_classes=num_classes, backbone=spec.backbone)
    wanted = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in converted.items()}
    if wanted != got:  # the table and rnlib's model disagree: a bug in rnlib, not in the file
        raise RuntimeError(f"rnlib's {spec.model} and the conversion table of {arch} disagree "
                           f"on {_names(sorted(set(wanted.items()) ^ set(got.items())))}; "
                           f"please report this as a bug of rnlib")
    config = TrainConfig(model=spec.model, backbone=spec.backbone, num_classes=num_classes,
                         dataset="voc" if num_classes == 21 else "", model_options={},
                         pretrained_backbone=False)
    filled = sum(1 for e in key_table(arch, num_classes) if e.authors not in state)
    provenance = {
        "architecture": arch,
        "authors_code": spec.authors,
        "num_classes": num_classes,
        "tensors": len(converted),
        "filled_num_batches_tracked": filled,
    }
    if not isinstance(src, Mapping):
        provenance["file"] = Path(src).name
        provenance["sha256"] = _sha256(Path(src))
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint({"model": converted, "config": plain(asdict(config)),
                     "converted_from": provenance}, dst)  # atomic: never half a file at dst
    return {**provenance, "out": str(dst)}


def _read(source: str | os.PathLike | Mapping) -> Mapping:
    """A mapping as it is, or a file read without running any code from it."""
    if isinstance(source, Mapping):
        return source
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"no file at {path}; download the authors' weights yourself "
                                "(rnlib.convert.RELEASES lists where) and pass the file's path")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # every failure to read becomes one clear message
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(err))
        if found:
            raise ValueError(
                f"{path} holds Python objects besides tensors ({found.group(1)}). rnlib reads "
                f"weights with torch.load(..., weights_only=True) and never runs code from a "
                f"file. If you trust this file, unpickle it yourself: state = "
                f"torch.load({str(path)!r}, map_location='cpu', weights_only=False), then pass "
                f"state to rnlib.convert.convert_checkpoint(state, 'model.pt') or "
                f"load_authors_model(state)") from err
        detail = str(err).split("WeightsUnpickler error:")[-1].split("Check the doc")[0]
        detail = " ".join(detail.split())[:200] or type(err).__name__
        raise ValueError(f"cannot read {path} ({detail}): it is damaged or not a PyTorch "
                         f"file; download it again") from err


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# --- command line --------------------------------------------------------------------------

def add_convert_command(subparsers) -> argparse.ArgumentParser:
    """Register ``rnlib convert AUTHORS_FILE --out FILE [--arch NAME]`` on ``subparsers``
    (what ``ArgumentParser.add_subparsers`` returns)."""
    p = subparsers.add_parser(
        "convert", help="turn the authors' released weights into an rnlib checkpoint",
        description="Convert a state dict saved by the authors' PyTorch code (Light-Weight "
                    "RefineNet-50/101/152, RefineNet-101/152) into a checkpoint that rnlib "
                    "loads. rnlib downloads nothing: fetch the file yourself (where: python -c "
                    "'from rnlib.convert import RELEASES; print(*RELEASES, sep=chr(10))').")
    p.add_argument("authors_file", metavar="AUTHORS_FILE", help="the authors' .pth/.pth.tar")
    p.add_argument("--out", required=True, metavar="FILE", help="the rnlib checkpoint to write")
    p.add_argument("--arch", choices=list(ARCHITECTURES),
                   help="the authors' architecture (default: guessed from the keys)")
    p.set_defaults(run=_convert_command)
    return p


def _convert_command(args: argparse.Namespace) -> None:
    info = convert_checkpoint(args.authors_file, args.out, arch=args.arch)
    print(f"converted {info['architecture']}: {info['num_classes']} classes, "
          f"{info['tensors']} tensors -> {info['out']}")
