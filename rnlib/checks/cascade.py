"""Exercise 6.2: the RefineNet cascade run by hand, on the decoder given and on a 2-cascade
one (§3.1, Fig. 2c)."""

from __future__ import annotations

import random
from collections.abc import Callable

import torch
from torch import nn

from .downsampling import halvings
from .report import Explanation, fail, hw, passed
from .state import checker, randomness
from .student import Watch, call
from .tolerance import agrees


@checker
def check_decoder(fn: Callable, decoder: nn.Module, *, seed: int | None = None,
                  allow_library: bool = False) -> None:
    """Exercise 6.2: ``fn(decoder, features) -> logits`` runs a RefineNetDecoder by hand, on
    ``decoder`` and on a 2-cascade decoder that the check builds (§3.1, Fig. 2c). The decoder's
    own forward is rnlib's implementation; its blocks and layers are the exercise's parts."""
    from ..models.refinenet import CASCADES, RefineNetDecoder

    name = "cascade forward"
    rng, gen, _ = randomness(seed)
    watch = Watch(name, (RefineNetDecoder,), allow_library)
    other = RefineNetDecoder((8, 12, 16, 20), 3, groups=CASCADES["2-cascade"], widths=(12, 8),
                             rcus=1, out_rcus=1, crp_blocks=2)
    hard_coded = ("it runs the decoder given but not a 2-cascade one (groups "
                  f"{other.groups})", "loop over zip(decoder.blocks, decoder.groups); do not "
                                      "hard-code four blocks or the stage indices")
    for what, net, explained in [("the decoder given", decoder, None),
                                 ("a 2-cascade decoder", other, hard_coded)]:
        training = net.training
        net.eval()
        try:
            _check_cascade(fn, net, watch, what, rng, gen, explained)
        finally:
            net.train(training)
    passed(name)


def _check_cascade(fn: Callable, decoder: nn.Module, watch: Watch, what: str,
                   rng: random.Random, gen: torch.Generator,
                   explained: Explanation | None) -> None:
    name = watch.component
    h, w = rng.randrange(57, 80, 2), rng.randrange(65, 100, 2)
    widths = {int(k): m.in_channels for k, m in decoder.adapt.items()}
    features = [torch.randn(1, widths.get(i, 1), halvings(h, i + 2), halvings(w, i + 2),
                            generator=gen) for i in range(max(widths) + 1)]
    context = (f"{what}: groups {decoder.groups}, features of "
               f"{', '.join(hw(f.shape) for f in features)}")
    given = [f.clone() for f in features]
    with torch.no_grad():
        expected = decoder(features)
        got = call(watch, fn, decoder, given, context=context, explain=lambda: explained,
                   hint="block k takes the adapted features of its group, followed by the "
                        "previous block's output (paths + [previous]); coarse to fine")
    if any(not torch.equal(a, b) for a, b in zip(given, features)):
        fail(name, "it changes the feature tensors in place", "compute new tensors: "
                                                              "x = adapt(x), not in-place updates",
             context)
    if not isinstance(got, torch.Tensor):
        fail(name, f"it returns {type(got).__name__}, not a tensor", "return the logits", context)
    if got.shape != expected.shape:
        fail(name, f"output shape {tuple(got.shape)}, expected {tuple(expected.shape)}",
             "the last block works at the finest resolution (1/4), and the classifier gives "
             "num_classes channels; no resize at the end", context)
    if not agrees(got, expected):
        with torch.no_grad():
            again = call(watch, fn, decoder, [f.clone() for f in features], context=context,
                         hint="call it twice on the same features: the logits must not change")
        if not agrees(got, again):
            fail(name, "its output changes from call to call", "the exercise runs in eval mode: "
                 "skip dropout, or use the decoder's own dropout modules (off in eval mode)",
                 context)
        fail(name, *(explained or ("the logits differ from the decoder's own forward",
             "go coarse to fine over decoder.groups (do not hard-code the 4-cascade): block k "
             "takes the adapted stage features plus the previous block's output, appended "
             "last")), context)
