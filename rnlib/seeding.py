"""Seeds for everything that decides a result, each derived from the config's seed.

A run's randomness is a pure function of numbers it always knows, never of what ran before:

- initial weights: ``(seed, "init")``;
- data order: torch's ``DistributedSampler`` shuffles from ``(seed, epoch)``;
- augmentation of sample ``i`` in epoch ``e``: ``(seed, e, i)``, in whichever process or
  worker reads it (:class:`SeededSamples`);
- dropout in step ``k`` of process ``r``: ``(seed, k, r)``.

So the same command twice gives the same weights, and a run resumed at any step continues
exactly as if it had not stopped: no random state needs saving.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import Dataset

__all__ = ["derive_seed", "seeded", "SeededSamples", "INIT", "DROPOUT"]

INIT, DROPOUT, AUGMENT = 1, 2, 3  # streams of random numbers, kept apart


def derive_seed(*keys: int) -> int:
    """A 63-bit seed mixed from ``keys`` (numpy's SeedSequence: nearby keys give unrelated
    seeds)."""
    return int(np.random.SeedSequence([int(k) for k in keys]).generate_state(2, np.uint32)
               .astype(np.uint64).dot([1 << 31, 1]))


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run a block with torch's CPU generator seeded, restoring its state afterwards."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


class SeededSamples(Dataset):
    """``dataset`` whose sample ``i`` in epoch ``e`` is drawn under the seed ``(seed, e, i)``:
    random augmentations depend on the sample and the epoch only. Set the epoch with
    :meth:`set_epoch` before each pass (DataLoader workers copy it when an epoch starts)."""

    def __init__(self, dataset: Dataset, seed: int) -> None:
        self.dataset, self.seed, self.epoch = dataset, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int):
        with seeded(derive_seed(self.seed, AUGMENT, self.epoch, i)):
            return self.dataset[i]
