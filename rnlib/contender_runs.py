"""The runs behind a comparison (:mod:`rnlib.compare`): where each lives, trained here or side by
side ahead of time (:mod:`rnlib.side_by_side`), reused when finished, kept as small records, and
measured on a split with the result cached beside it.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from torch import nn

from .checkpoint import CHECKPOINT, load_checkpoint, resumable, run_settings, same_settings
from .config import TrainConfig
from .data import SegmentationDataset, eval_transform
from .history import History
from .runs import make_model, make_source, train
from .side_by_side import run_side_by_side
from .train import Trainer

__all__ = ["Entry", "RECORD", "run_dir", "KeptRun", "ContenderRuns"]


@dataclass(frozen=True)
class Entry:
    """One contender: a registry model and the options that make it what it is."""

    model: str
    options: tuple[tuple[str, object], ...] = ()

RECORD = "record.json"  # a finished run's settings, step and history, beside its checkpoint


def run_dir(out_dir: str | Path, entry: Entry, lr: float, seed: int) -> Path:
    """Where a run lives: ``out_dir/refinenet/lr0.001-seed0``,
    ``out_dir/refinenet-crp_blocks0/lr0.001-seed0``..."""
    name = "-".join([entry.model] + [f"{k}{v}" for k, v in entry.options])
    return Path(out_dir) / name / f"lr{lr:g}-seed{seed}"




@dataclass
class KeptRun:
    """A finished run known from its record alone (``record.json``: settings, step, history;
    ``eval-SPLIT.json``: metrics), without its weights: all that a Row needs of a run. Records
    are small enough to commit, so a long comparison (the course's reference) re-renders, and
    continues where it stopped, on a fresh clone."""

    history: History
    step: int
    model: nn.Module  # the architecture, for its cost (untrained weights)
    out_dir: Path

    @classmethod
    def load(cls, folder: Path, config: TrainConfig) -> KeptRun | None:
        """The run kept in ``folder``, or None when there is none of ``config``'s settings."""
        path = folder / RECORD
        if not path.exists():
            return None
        try:
            record = json.loads(path.read_text())
            if not same_settings(record["settings"], config):
                return None
            history, step = History.from_dict(record["history"]), record["step"]
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
            raise ValueError(f"{path} is not a kept run's record ({type(err).__name__}: {err}); "
                             f"delete it to train the run again") from err
        return cls(history, step, make_model(config), folder)

    @staticmethod
    def save(trainer: Trainer, config: TrainConfig, folder: Path) -> None:
        """Keep a finished run's record in ``folder``."""
        folder.mkdir(parents=True, exist_ok=True)
        (folder / RECORD).write_text(json.dumps({"settings": run_settings(config),
                                                 "step": trainer.step,
                                                 "history": trainer.history.to_dict()}))


def _run(config: TrainConfig, folder: Path, resume: bool, progress: bool,
         kept: Path | None = None):
    """Train (or reuse) one run; returns the trainer (or the KeptRun that stands in for it) and
    whether it was reused. With ``kept``, a finished run is also kept there, and with ``resume``
    a run kept there is reused when ``folder`` holds no checkpoint of its settings."""
    resuming = resume and resumable(folder, config)
    if resuming:
        state = load_checkpoint(folder / CHECKPOINT)
        reused = state["step"] >= state["total_steps"]
    elif resume and kept is not None and (record := KeptRun.load(kept, config)) is not None:
        return record, True
    else:
        reused = False
    trainer = train(config, folder, resume=resuming, overwrite=not resuming, progress=progress)
    if kept is not None and trainer.runtime.is_main:
        KeptRun.save(trainer, config, kept)
    return trainer, reused


def _evaluate(run, config: TrainConfig, folders: list[Path], split: str) -> dict:
    """The run's metrics on ``split``, cached beside its checkpoint (and its kept record) with
    the run's settings."""
    caches = [folder / f"eval-{split}.json" for folder in folders]
    for cache in filter(Path.exists, caches):
        saved = json.loads(cache.read_text())
        if same_settings(saved["settings"], config) and saved["step"] == run.step:
            result = saved["result"]
            break
    else:
        if isinstance(run, KeptRun):  # no weights to evaluate
            raise FileNotFoundError(f"{run.out_dir} keeps this run's curves but not its metrics "
                                    f"on this split; delete {run.out_dir / RECORD} to train it "
                                    f"again")
        data = SegmentationDataset(make_source(config, split), config.num_classes,
                                   eval_transform())
        result = asdict(run.evaluate(data))
    for cache in caches if isinstance(run, KeptRun) or run.runtime.is_main else []:
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps({"settings": run_settings(config), "step": run.step,
                                     "result": result}))
    return result


def _train_run(config: TrainConfig, folders: list[Path], resume: bool, split: str | None
               ) -> tuple[float, bool]:
    """One run trained (or reused) in a process of its own, and measured on ``split`` (None:
    not); its seconds and whether it was reused. Its results stay in its folders."""
    started = time.perf_counter()
    run, reused = _run(config, folders[0], resume, False, folders[1] if folders[1:] else None)
    if split is not None:
        _evaluate(run, config, folders, split)
    return time.perf_counter() - started, reused


class ContenderRuns:
    """The runs of one comparison's ``entries`` (their configs in ``configs``) under ``out_dir``
    (and ``kept``). :meth:`ahead` trains runs side by side in ``processes`` processes before
    they are read (with 1, nothing: :meth:`read` trains them here); ``spent`` and ``trained``
    are each entry's seconds in this call and whether any of its runs trained in it."""

    def __init__(self, entries: dict[str, Entry], configs: dict[str, TrainConfig],
                 out_dir: str | Path, kept: str | Path | None, processes: int,
                 progress: bool) -> None:
        self.entries, self.configs, self.out_dir, self.kept = entries, configs, out_dir, kept
        self.processes, self.progress = processes, progress
        self.spent = dict.fromkeys(entries, 0.0)
        self.trained = dict.fromkeys(entries, False)

    def folders(self, name: str, lr: float, seed: int) -> list[Path]:
        """The run's folder, then its kept record's (when kept)."""
        return [run_dir(where, self.entries[name], lr, seed)
                for where in (self.out_dir, self.kept) if where]

    def ahead(self, runs: list[tuple[str, float, int]], resume: bool, measure: str | None
              ) -> None:
        """Train ``runs`` (name, lr, seed) side by side and measure each on ``measure``."""
        if self.processes <= 1 or not runs:
            return
        jobs = [(replace(self.configs[name], lr=lr, seed=seed), self.folders(name, lr, seed),
                 resume, measure) for name, lr, seed in runs]

        def done(i: int, result: tuple[float, bool]) -> None:
            name, lr, seed = runs[i]
            self.spent[name] += result[0]
            self.trained[name] |= not result[1]
            if self.progress:
                print(f"  {name} (lr {lr:g}, seed {seed}): {result[0]:.0f} s", flush=True)

        run_side_by_side(_train_run, jobs, self.processes, done)

    def read(self, name: str, lr: float, seed: int, resume: bool, measure: str | None):
        """The run (trained here unless it was trained ahead) and its metrics on ``measure``."""
        started, config = time.perf_counter(), replace(self.configs[name], lr=lr, seed=seed)
        where, side_by_side = self.folders(name, lr, seed), self.processes > 1
        run, reused = _run(config, where[0], resume or side_by_side, self.progress,
                           where[1] if self.kept else None)
        result = _evaluate(run, config, where, measure) if measure else None
        self.spent[name] += time.perf_counter() - started
        self.trained[name] |= not reused and not side_by_side
        return run, result
