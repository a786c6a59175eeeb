"""Where the splits of a generated dataset (Shapes, the probes) lie among its image indices:
image ``i`` of seed ``s`` is drawn from its own generator, so a split is a range of ``i``."""

from __future__ import annotations

__all__ = ["SPLIT_STARTS", "generated_indices"]

SPLIT_STARTS = {"train": 0, "val": 1_000_000, "test": 2_000_000}


def generated_indices(split: str, count: int) -> range:
    """The image indices of ``split`` in a generated dataset of ``count`` images per split;
    the splits' indices are disjoint."""
    if split not in SPLIT_STARTS:
        raise ValueError(f"generated datasets (shapes, probe-*) have splits "
                         f"{', '.join(SPLIT_STARTS)}, got {split!r}")
    return range(SPLIT_STARTS[split], SPLIT_STARTS[split] + count)
