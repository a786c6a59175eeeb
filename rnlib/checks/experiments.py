"""Notebooks 07 to 09: 7.1 the poly learning-rate schedule, 8.1 a relative cost, and 9.1 the
receptive field of chained residual pooling."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .. import blocks
from .report import passed
from .scalar import Mistake, diagnose, number
from .state import checker, randomness
from .student import Watch, call
from .tolerance import show

_POLY = "lr = base_lr * (1 - step / total_steps) ** power"


def _poly_mistakes(step: int, total: int, lr: float, p: float) -> list[Mistake]:
    return [
        Mistake(lr * (1 - step / total), "the rate decays linearly",
                "raise (1 - step / total_steps) to the power"),
        Mistake(lr * (1 - step / total) ** 0.9, "it ignores its power argument (uses 0.9)",
                "use the power parameter"),
        Mistake(lr * (1 - step / total ** p), "only total_steps is raised to the power",
                "parenthesise: (1 - step / total_steps) ** power"),
        Mistake(lr * (1 - step // total) ** p, "it divides with //: the rate stays at base_lr "
                "until the end", "use / for the fraction of training done"),
        Mistake(lr * max(0.0, 1 - (step + 1) / total) ** p, "it counts steps from 1",
                "at step 0 the rate is base_lr: (1 - step / total_steps)"),
    ]


@checker
def check_poly_lr(fn: Callable, *, seed: int | None = None, allow_library: bool = False) -> None:
    """Exercise 7.1: ``fn(step, total_steps, base_lr, power=0.9) -> lr``, its default power
    included."""
    from torch.optim.lr_scheduler import PolynomialLR

    from .. import optim

    name = "poly_lr"
    rng, _, _ = randomness(seed)
    watch = Watch(name, (optim, PolynomialLR), allow_library)
    base, power = rng.choice([0.01, 0.1, 3e-4]), rng.choice([0.5, 2.0])
    cases = [(s, t, base, 0.9) for s, t in [(0, 100), (50, 100), (99, 100), (100, 100), (7, 13)]]
    cases += [(rng.randint(1, 39), 40, base, power)]
    for step, total, lr, p in cases:
        got = number(name, call(watch, fn, step, total, lr, p, hint=_POLY))
        diagnose(name, got, lr * (1 - step / total) ** p, _POLY, scale=lr,
                 mistakes=_poly_mistakes(step, total, lr, p),
                 context=f"step {step} of {total}, base_lr {lr}, power {p}")
    for step, total in [(rng.randint(1, 99), 100), (3, 4)]:
        got = number(name, call(watch, fn, step, total, base, hint=_POLY))
        expected = base * (1 - step / total) ** 0.9
        mine, theirs = show(got, expected)
        diagnose(name, got, expected, "def poly_lr(step, total_steps, base_lr, power=0.9)",
                 scale=base, otherwise=f"called without power it gives {mine}, expected "
                                       f"{theirs}: its default power is not 0.9",
                 context=f"poly_lr({step}, {total}, {base})")
    passed(name)


@checker
def check_relative_cost(fn: Callable, *, seed: int | None = None,
                        allow_library: bool = False) -> None:
    """Exercise 8.1: ``fn(costs, field, model, reference) -> costs[model][field] / ...``."""
    name = "relative_cost"
    rng, _, _ = randomness(seed)
    watch = Watch(name, (), allow_library)  # no library helper does this exercise
    models = ["refinenet", "dilated-os8", "fcn8s"]
    fields = ["gmacs", "latency_ms", "train_peak_mib"]
    costs = {m: {f: round(rng.uniform(1, 60), 1) for f in fields} for m in models}
    for field, model, ref in [("latency_ms", "dilated-os8", "refinenet"),
                              ("train_peak_mib", "refinenet", "fcn8s"),
                              ("gmacs", "fcn8s", "dilated-os8")]:
        mine, theirs = costs[model][field], costs[ref][field]
        expected = mine / theirs
        context = f"{field} of {model} relative to {ref}"
        got = number(name, call(watch, fn, costs, field, model, ref, context=context,
                                hint="costs[model][field] / costs[reference][field]"))
        diagnose(name, got, expected, "costs[model][field] / costs[reference][field]",
                 context=context, mistakes=[
                     Mistake(1 / expected, "the ratio is upside down",
                             "model's value / reference's value"),
                     Mistake(mine - theirs, "it gives the difference, not the ratio",
                             "divide: model / reference"),
                     Mistake(100 * expected, "it gives a percentage",
                             "return the plain ratio (2.0 means twice)"),
                     Mistake(costs[model]["gmacs"] / costs[ref]["gmacs"],
                             "it ignores its field argument",
                             "costs[model][field]: the field is a parameter")])
    passed(name)


def _measured_receptive_field(num_blocks: int) -> int:
    crp = blocks.ChainedResidualPooling(1, num_blocks)
    for c in crp.convs:
        nn.init.constant_(c.weight, 1.0)
    # a max pooling passes gradient to one pixel per window; an average pooling has the same
    # window and passes it to all, so the gradient's support is the receptive field
    crp.pool = lambda t: F.avg_pool2d(t, 5, 1, 2)
    x = torch.zeros(1, 1, 81, 81, requires_grad=True)
    crp(x + 1.0)[0, 0, 40, 40].backward()
    reach = torch.nonzero(x.grad[0, 0]).float()
    return int(reach[:, 0].max() - reach[:, 0].min()) + 1


@checker
def check_crp_receptive_field(fn: Callable, *, seed: int | None = None,
                              allow_library: bool = False) -> None:
    """Exercise 9.1: ``fn(num_blocks) -> side of the receptive field of CRP's output``."""
    name = "crp_receptive_field"
    rng, _, _ = randomness(seed)
    watch = Watch(name, (), allow_library)  # no library helper does this exercise
    for n in (1, 2, 4, rng.randint(3, 6)):
        expected = _measured_receptive_field(n)
        got = number(name, call(watch, fn, n, hint="return an int"))
        diagnose(name, got, expected, "each block adds a 5x5 pooling and a 3x3 convolution: "
                 "(5 - 1) + (3 - 1) pixels",
                 context=f"{n} block{'s' * (n > 1)}: you give {got:g}, measured {expected}",
                 otherwise=f"for {n} blocks you give {got:g}, measured {expected}", mistakes=[
                     Mistake(1 + 4 * n, "only the poolings widen it",
                             "each 3x3 convolution adds 3 - 1 = 2 pixels too"),
                     Mistake(1 + 2 * n, "only the convolutions widen it",
                             "each 5x5 pooling adds 5 - 1 = 4 pixels too"),
                     Mistake(6 * n, "the centre pixel is not counted",
                             "a single pixel sees 1; each block adds (5 - 1) + (3 - 1)"),
                     Mistake(7, "it stays at one block's window, as if the blocks ran in "
                                "parallel", "in a chain each block widens the window of the "
                                            "previous one")])
    passed(name)
