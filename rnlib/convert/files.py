"""The authors' files: read without running code, turned into an rnlib model or checkpoint."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn

from ..safeload import load_safely
from .architectures import ARCHITECTURES, architecture
from .state_dict import convert_state_dict, guess_architecture, names, num_classes_of, unwrap
from .table import key_table


def load_authors_model(path_or_state_dict: str | os.PathLike | Mapping,
                       arch: str | None = None) -> nn.Module:
    """An rnlib model (in eval mode) holding the authors' weights from a file or a state dict;
    ``arch`` is guessed from the keys when left out."""
    from ..models import build_model

    state = unwrap(_read(path_or_state_dict))
    arch = guess_architecture(state) if arch is None else architecture(arch).name
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
    from ..atomic import check_output
    from ..checkpoint import save_checkpoint
    from ..config import TrainConfig, plain
    from ..models import build_model

    dst = check_output(dst, () if isinstance(src, Mapping) else (src,), (".pt", ".pth"),
                       "an rnlib checkpoint")
    state = unwrap(_read(src))
    arch = guess_architecture(state) if arch is None else architecture(arch).name
    spec = ARCHITECTURES[arch]
    num_classes = num_classes_of(state)
    converted = convert_state_dict(state, arch)
    with torch.device("meta"):  # rnlib's own model, for its keys and shapes only: no memory
        model = build_model(spec.model, num_classes=num_classes, backbone=spec.backbone)
    wanted = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in converted.items()}
    if wanted != got:  # the table and rnlib's model disagree: a bug in rnlib, not in the file
        raise RuntimeError(f"rnlib's {spec.model} and the conversion table of {arch} disagree "
                           f"on {names(sorted(set(wanted.items()) ^ set(got.items())))}; "
                           f"please report this as a bug of rnlib")
    config = TrainConfig(model=spec.model, backbone=spec.backbone, num_classes=num_classes,
                         dataset="voc" if num_classes == 21 else None, model_options={},
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
    dst.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint({"model": converted, "config": plain(asdict(config)),
                     "converted_from": provenance}, dst)  # atomic: never half a file at dst
    return {**provenance, "out": str(dst)}


def _read(source: str | os.PathLike | Mapping) -> Mapping:
    """A mapping as it is, or a file read without running any code from it."""
    if isinstance(source, Mapping):
        return source
    return load_safely(source, "weights file",
                       missing="download the authors' weights yourself "
                               "(rnlib.convert.RELEASES lists where) and pass the file's path",
                       fix="download it again",
                       if_trusted="pass state to rnlib.convert.convert_checkpoint(state, "
                                  "'model.pt') or load_authors_model(state)")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


