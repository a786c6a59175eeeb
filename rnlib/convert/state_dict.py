"""Renaming a state dict between the authors' keys and rnlib's, with every mismatch named."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from .architectures import ARCHITECTURES, architecture
from .table import key_table

# BatchNorm counts its batches since PyTorch 0.4.1; older files lack the counter, which
# evaluation never reads, so a missing one is filled with 0.
OPTIONAL_SUFFIX = ".num_batches_tracked"
# Training scripts nest the weights: {"segmenter": ...} (the authors'), {"model": ...}, ...
CONTAINER_KEYS = ("state_dict", "model", "segmenter", "model_state_dict", "net", "network")


def convert_state_dict(state_dict: Mapping, arch: str | None = None) -> dict[str, torch.Tensor]:
    """The authors' state dict -> rnlib's, for ``build_model(...).load_state_dict(strict=True)``.

    ``state_dict`` may be nested under ``state_dict``/``model``/``segmenter`` and carry
    DataParallel's ``module.`` prefix. ``arch`` is a name of :data:`ARCHITECTURES`; ``None``
    guesses it from the keys. Raises ``ValueError`` naming every missing, unexpected or
    misshapen key. The tensors are shared, not copied.
    """
    state = unwrap(state_dict)
    arch = guess_architecture(state) if arch is None else architecture(arch).name
    table = key_table(arch, num_classes_of(state))
    _check(state, {e.authors: e.shape for e in table}, arch, "the authors'")
    return {e.rnlib: state[e.authors] if e.authors in state else _zero_count() for e in table}


def to_authors_state_dict(model_state_dict: Mapping, arch: str) -> dict[str, torch.Tensor]:
    """The inverse: rnlib's state dict of ``arch`` -> the authors' key names, e.g. to load an
    rnlib-trained model into their code."""
    state = unwrap(model_state_dict)
    name = architecture(arch).name
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
    state = unwrap(state_dict)
    for key in ("clf_conv.weight", "clf_conv.bias"):
        if key in state:
            return int(state[key].shape[0])
    raise ValueError("no classifier 'clf_conv.weight' in this state dict, so the number of "
                     "classes is unknown; it is not a checkpoint of the authors' RefineNet "
                     f"(first keys: {names(list(state)[:5])})")


def guess_architecture(state_dict: Mapping) -> str:
    """The name in :data:`ARCHITECTURES` that an authors' state dict fits, from which keys it
    has (RCUs or not, the kernel of its convolutions) and the depth of its ResNet stages."""
    state = unwrap(state_dict)
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
                         f"(first keys: {names(list(state)[:5])})")
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


def _zero_count() -> torch.Tensor:
    return torch.zeros((), dtype=torch.long)


def unwrap(obj: object) -> dict[str, torch.Tensor]:
    """The state dict inside a checkpoint: unnested, without DataParallel's ``module.``."""
    seen = []
    while isinstance(obj, Mapping) and not _is_state(obj):
        seen.append(list(obj)[:6])
        inner = next((obj[k] for k in CONTAINER_KEYS if isinstance(obj.get(k), Mapping)), None)
        if inner is None:
            raise ValueError(f"no state dict of tensors in this checkpoint (its keys: "
                             f"{names(list(obj)[:8])}); rnlib looks at the top level and under "
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
        lines.append(f"  {_count(missing, 'missing key')}: {names(missing)}")
    if unexpected:
        lines.append(f"  {_count(unexpected, 'unexpected key')}: {names(unexpected)}")
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


def names(keys: list[str], limit: int = 6) -> str:
    return _listing([repr(k) for k in keys], limit)


def _listing(items: list[str], limit: int = 6) -> str:
    more = f", ... and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


