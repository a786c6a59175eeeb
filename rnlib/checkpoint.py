"""Checkpoints: written atomically, read safely, and keyed by the settings of their run.

A checkpoint holds tensors and plain data only, so ``torch.load(..., weights_only=True)`` opens
it without running code (a checkpoint from the internet cannot execute anything). Its
``settings`` say what its result depends on, so that a run resumes only into the same settings.
"""

from __future__ import annotations

from dataclasses import asdict, fields, replace
from pathlib import Path

import torch

from .atomic import write_atomic
from .budget import BUDGET_ENV, budget_scale
from .config import AFFECTS_RESULTS, RECORDED_AS, TrainConfig, plain
from .safeload import load_safely

__all__ = ["CHECKPOINT", "save_checkpoint", "load_checkpoint", "run_settings", "resumable",
           "checkpoint_config", "non_finite", "same_settings", "check_resume"]

CHECKPOINT = "last.pt"  # the name of a run's checkpoint in its folder


def save_checkpoint(state: dict, path: str | Path) -> None:
    """Write atomically (:func:`rnlib.atomic.write_atomic`): an interrupted or failed save
    leaves the previous checkpoint and no temporary file; two writers never share a name."""
    write_atomic(path, lambda file: torch.save(state, file))


def load_checkpoint(path: str | Path) -> dict:
    """Read a checkpoint safely: tensors and plain data only, no code runs."""
    return load_safely(path, "checkpoint", missing="train first, or check the folder",
                       fix="train again into a new folder, or use another copy")


def checkpoint_config(state: object, path: str | Path) -> dict:
    """The config of a checkpoint that ``rnlib train`` or ``rnlib convert`` wrote, or a
    ValueError that says what else the file is (e.g. a plain state dict)."""
    if isinstance(state, dict) and isinstance(state.get("config"), dict) and "model" in state:
        return state["config"]
    what = ("a plain state dict (weights without their model's config)"
            if isinstance(state, dict) and state and all(isinstance(v, torch.Tensor)
                                                          for v in state.values())
            else "not an rnlib checkpoint (it has no 'config' and 'model')")
    raise ValueError(f"{path} is {what}; rnlib needs a last.pt written by rnlib train, or "
                     f"authors' weights turned into one by rnlib convert")


def non_finite(weights: dict) -> tuple[int, int]:
    """How many of the floating-point values in a state dict are NaN or infinite, of all."""
    tensors = [t for t in weights.values() if isinstance(t, torch.Tensor) and t.is_floating_point()]
    bad = sum(int((~torch.isfinite(t)).sum()) for t in tensors)
    return bad, sum(t.numel() for t in tensors)


def run_settings(config: TrainConfig) -> dict:
    """What a run's result depends on: its config, with every field that changes only how it
    runs and reports (device, compiling, workers, how often it evaluates or saves: none changes
    a weight) at the value its marker records, and the budget scale."""
    how = {f.name: f.metadata[RECORDED_AS] for f in fields(config)
           if not f.metadata[AFFECTS_RESULTS]}
    return {**plain(asdict(replace(config, **how))), "budget_scale": budget_scale()}


def same_settings(stored: dict | None, config: TrainConfig) -> bool:
    """Whether ``stored`` (a checkpoint's, a record's or a cache's settings) are ``config``'s.
    An operational field added since they were written counts as its recorded value: records
    made before TrainConfig.threads still stand."""
    if stored is None:
        return False
    recorded = {f.name: plain(f.metadata[RECORDED_AS]) for f in fields(config)
                if not f.metadata[AFFECTS_RESULTS]}
    return {**recorded, **stored} == run_settings(config)


def check_resume(state: dict, config: TrainConfig, data: str | None, path: Path) -> None:
    """A ValueError unless the checkpoint ``state`` (read from ``path``) was written by a run
    of ``config`` on the same data (``data``: its fingerprint; None where it has none)."""
    if not same_settings(state.get("settings"), config):
        raise ValueError(f"{path} was written with other settings (options or {BUDGET_ENV}); "
                         f"resume with the same ones, or train into a new folder")
    if None not in (state.get("data"), data) and state["data"] != data:
        raise ValueError(f"the training data changed since {path} was written (other files, "
                         f"sizes or modification times); resume with the same data, or train "
                         f"anew (--overwrite)")


def resumable(out_dir: str | Path, config: TrainConfig) -> bool:
    """Whether ``out_dir``'s checkpoint was written by a run of ``config`` (at the current budget
    scale), so that ``fit(resume=True)`` continues it, or returns at once if it finished."""
    path = Path(out_dir) / CHECKPOINT
    return path.exists() and same_settings(load_checkpoint(path).get("settings"), config)
