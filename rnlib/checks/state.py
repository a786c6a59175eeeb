"""What every check runs under: torch's global settings as a fresh process has them, and the
check's own seed, both restored afterwards, so that neither the notebook's settings (a later
``torch.set_grad_enabled(False)``) nor its random state reach the verdict, nor the check the
notebook."""

from __future__ import annotations

import functools
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import torch

from ..seeding import seeded

DEFAULT_SEED = 0  # the visible checks; teachers pass other seeds for hidden variants

Check = TypeVar("Check", bound=Callable[..., None])


@contextmanager
def clean_state() -> Iterator[None]:
    """Grad mode on, inference mode off, float32 by default, no deterministic-only algorithms;
    the caller's settings come back afterwards."""
    saved = (torch.get_default_dtype(), torch.are_deterministic_algorithms_enabled(),
             torch.is_deterministic_algorithms_warn_only_enabled())
    try:
        with torch.inference_mode(False), torch.enable_grad():
            torch.set_default_dtype(torch.float32)
            torch.use_deterministic_algorithms(False)
            yield
    finally:
        torch.set_default_dtype(saved[0])
        torch.use_deterministic_algorithms(saved[1], warn_only=saved[2])


def checker(check: Check) -> Check:
    """Run a ``check_*`` function in :func:`clean_state`, with torch's generator seeded by its
    ``seed`` keyword (None: :data:`DEFAULT_SEED`)."""

    @functools.wraps(check)
    def run(*args: Any, seed: int | None = None, **kwargs: Any) -> None:
        with clean_state(), seeded(DEFAULT_SEED if seed is None else seed):
            return check(*args, seed=seed, **kwargs)

    return run  # type: ignore[return-value]


def randomness(seed: int | None) -> tuple[random.Random, torch.Generator, int]:
    """The check's own generators: Python's for settings, torch's for tensors."""
    seed = DEFAULT_SEED if seed is None else seed
    return random.Random(seed), torch.Generator().manual_seed(seed), seed
