"""Checkpoints: written atomically, read safely, and keyed by the settings of their run.

A checkpoint holds tensors and plain data only, so ``torch.load(..., weights_only=True)`` opens
it without running code (a checkpoint from the internet cannot execute anything). Its
``settings`` say what its result depends on, so that a run resumes only into the same settings.
"""

from __future__ import annotations

import os
from dataclasses import asdict, fields, replace
from pathlib import Path

import torch

from .budget import budget_scale
from .config import AFFECTS_RESULTS, RECORDED_AS, TrainConfig, plain
from .safeload import load_safely

__all__ = ["CHECKPOINT", "save_checkpoint", "load_checkpoint", "run_settings", "resumable"]

CHECKPOINT = "last.pt"  # the name of a run's checkpoint in its folder


def save_checkpoint(state: dict, path: str | Path) -> None:
    """Write to a temporary file, then rename: an interrupted save never leaves a half file."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str | Path) -> dict:
    """Read a checkpoint safely: tensors and plain data only, no code runs."""
    return load_safely(path, "checkpoint", missing="train first, or check the folder",
                       fix="train again into a new folder, or use another copy")


def run_settings(config: TrainConfig) -> dict:
    """What a run's result depends on: its config, with every field that changes only how it
    runs and reports (device, compiling, workers, how often it evaluates or saves: none changes
    a weight) at the value its marker records, and the budget scale."""
    how = {f.name: f.metadata[RECORDED_AS] for f in fields(config)
           if not f.metadata[AFFECTS_RESULTS]}
    return {**plain(asdict(replace(config, **how))), "budget_scale": budget_scale()}


def resumable(out_dir: str | Path, config: TrainConfig) -> bool:
    """Whether ``out_dir``'s checkpoint was written by a run of ``config`` (at the current budget
    scale), so that ``fit(resume=True)`` continues it, or returns at once if it finished."""
    path = Path(out_dir) / CHECKPOINT
    return path.exists() and load_checkpoint(path).get("settings") == run_settings(config)
