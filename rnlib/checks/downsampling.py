"""Notebook 02: 2.1 the sizes of the backbone's stages, and 2.2 the segmentation loss on
upsampled logits."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from .. import blocks
from .report import fail, passed
from .scalar import Mistake, diagnose
from .state import DEFAULT_SEED, checker, randomness
from .student import Watch, call


def halvings(n: int, count: int) -> int:
    """A side after ``count`` stride-2 layers: floor((n + 2 * pad - k) / 2) + 1 = ceil(n / 2)."""
    for _ in range(count):
        n = (n + 1) // 2
    return n


def _sizes(raw: object, h: int, w: int, name: str) -> list[tuple[int, ...]]:
    try:
        return [tuple(int(v) for v in s) for s in raw]  # type: ignore[union-attr]
    except (TypeError, ValueError):
        fail(name, f"for a {h}x{w} input it returns {raw!r}",
             "return a list of four (h, w) pairs of ints")


@checker
def check_stage_sizes(fn: Callable, *, seed: int | None = None,
                      allow_library: bool = False) -> None:
    """Exercise 2.1: ``fn(height, width) -> [(h, w) of layer1, layer2, layer3, layer4]``."""
    from ..backbones import ResNetBackbone

    name = "stage_sizes"
    rng, _, seed = randomness(seed)
    watch = Watch(name, (), allow_library)  # no library helper does this exercise
    with torch.device("meta"):  # shapes only: the network runs without computing a value
        net = ResNetBackbone("resnet18").eval()
    sizes = [(128, 128), (512, 375), (97, 130), (33, 65)]
    if seed != DEFAULT_SEED:
        sizes = [(rng.randint(17, 300), rng.randint(17, 300)) for _ in range(4)] + [(256, 160)]
    for h, w in sizes:
        with torch.device("meta"):
            expected = [tuple(f.shape[-2:]) for f in net(torch.zeros(1, 3, h, w))]
        got = _sizes(call(watch, fn, h, w, hint="return a list of four (h, w) pairs"), h, w, name)
        context = f"a {h}x{w} input: you give {got}, the network gives {expected}"
        if got != expected and len(got) != 4:
            fail(name, f"it returns {len(got)} sizes", "four stages: layer1 (1/4) .. layer4 "
                                                       "(1/32)", context)
        diagnose(name, got, expected, "each stride-2 layer gives floor((n + 2 * pad - k) / 2) "
                 "+ 1", context=context, otherwise=f"for a {h}x{w} input the sizes differ",
                 mistakes=[
                     Mistake([(b, a) for a, b in expected], "height and width are swapped",
                             "return (h, w) pairs: height first"),
                     Mistake([(halvings(h, i), halvings(w, i)) for i in (1, 2, 3, 4)],
                             "layer1 comes out at 1/2: the max pooling of the stem is missing",
                             "the stem's 7x7 convolution and its 3x3 max pooling both halve: "
                             "layer1 is at 1/4"),
                     Mistake([(h // r, w // r) for r in (4, 8, 16, 32)], "each halving rounds "
                             "down; sides that are not multiples of 32 come out too small",
                             "a stride-2 layer gives floor((n + 2 * pad - k) / 2) + 1, i.e. "
                             "ceil(n / 2)")])
    passed(name)


def _loss_mistakes(logits: torch.Tensor, target: torch.Tensor) -> list[Mistake]:
    size, (h, w) = target.shape[-2:], logits.shape[-2:]

    def shrunk() -> torch.Tensor:
        small = F.interpolate(target[:, None].float(), size=(h, w), mode="nearest")[:, 0]
        return F.cross_entropy(logits, small.long(), ignore_index=255)

    return [
        Mistake(lambda: F.nll_loss(torch.log(blocks.resize(logits.softmax(1), size)), target,
                                   ignore_index=255),
                "it applies softmax before upsampling (then log): unstable, and not the loss on "
                "the upsampled logits", "upsample the logits, then F.cross_entropy, which "
                                        "applies log-softmax itself"),
        Mistake(shrunk, "it shrinks the target to the logits' size: the loss ignores the fine "
                        "detail", "upsample the logits to the target's size instead"),
        Mistake(lambda: F.cross_entropy(F.interpolate(logits, size=size), target,
                                        ignore_index=255),
                "it upsamples the logits with mode='nearest'", "mode='bilinear'"),
        Mistake(lambda: F.cross_entropy(blocks.resize(logits, size), target, ignore_index=255,
                                        reduction="sum"),
                "it sums the loss over pixels", "F.cross_entropy averages over the valid "
                                                "pixels: keep reduction='mean'"),
    ]


@checker
def check_segmentation_loss(fn: Callable, *, seed: int | None = None,
                            allow_library: bool = False) -> None:
    """Exercise 2.2: ``fn(logits (N, K, h, w), target (N, H, W)) -> loss`` upsampling first.
    Either align_corners convention of the bilinear upsampling is accepted."""
    name = "segmentation_loss"
    rng, gen, _ = randomness(seed)
    watch = Watch(name, (), allow_library)  # no library helper does this exercise
    hint = "upsample the logits to target.shape[-2:], then F.cross_entropy(..., ignore_index=255)"
    for n, k, h, w, scale in [(2, 3, 5, 7, 4), (1, rng.randint(4, 6), rng.randint(3, 6),
                                                  rng.randint(5, 9), rng.choice([4, 8]))]:
        logits = torch.randn(n, k, h, w, generator=gen) * 4
        target = torch.randint(0, k, (n, h * scale, w * scale), generator=gen)
        target[:, :3] = 255
        context = f"logits {tuple(logits.shape)}, target {tuple(target.shape)}"
        got = call(watch, fn, logits, target, hint=hint, context=context)
        if not isinstance(got, torch.Tensor) or got.ndim != 0:
            kind = (f"a tensor of shape {tuple(got.shape)}" if isinstance(got, torch.Tensor)
                    else type(got).__name__)
            fail(name, f"it returns {kind}, not a scalar tensor",
                 "F.cross_entropy(...) with the default reduction='mean' returns one", context)
        conventions = [F.cross_entropy(F.interpolate(logits, size=target.shape[-2:],
                                                     mode="bilinear", align_corners=c),
                                       target, ignore_index=255) for c in (False, True)]
        expected = min(conventions, key=lambda e: abs(float(got) - float(e)))  # either is right
        diagnose(name, got, expected, "resize the logits to the target's size (bilinear), then "
                 "F.cross_entropy with ignore_index=255", context=context,
                 mistakes=_loss_mistakes(logits, target))
        huge = call(watch, fn, logits * 1e4, target, hint=hint, context=context)
        if not torch.isfinite(huge):
            fail(name, "it is not finite for large logits",
                 "let F.cross_entropy take the log-softmax", context)
    passed(name)
