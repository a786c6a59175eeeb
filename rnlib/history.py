"""What a training run records (:class:`History`): the loss of every step, and at each
epoch's end and each evaluation the numbers that plots and comparisons read. A checkpoint and
``history.json`` hold it as plain lists under the same names (:meth:`History.to_dict`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .evaluate import EvalResult

__all__ = ["History"]


def _series() -> Any:
    return field(default_factory=list)


@dataclass
class History:
    """A run's record, one list per quantity (empty until the run records it)."""

    step_loss: list[float] = _series()  # the training loss of every optimizer step
    # at the end of each epoch, and of the run
    epoch: list[float] = _series()
    step: list[int] = _series()
    train_loss: list[float] = _series()  # the mean loss since the last epoch's end
    lr: list[float] = _series()
    elapsed_s: list[float] = _series()  # the training loop's own seconds so far
    # at each evaluation on the validation split
    eval_step: list[int] = _series()
    eval_elapsed_s: list[float] = _series()
    val_miou: list[float] = _series()
    val_pixel_accuracy: list[float] = _series()
    val_boundary_f: list[float] = _series()
    val_iou: list[list[float]] = _series()  # class by class

    def record(self, **values: object) -> None:
        """Append one value to each list named (one epoch's, or one evaluation's)."""
        for name, value in values.items():
            getattr(self, name).append(value)

    def record_epoch(self, step: int, steps_per_epoch: int, lr: float, elapsed_s: float) -> None:
        """The end of an epoch (or of the run) at ``step``: the mean loss since the last one."""
        losses = self.step_loss[self.step[-1] if self.step else 0:step]
        self.record(epoch=step / steps_per_epoch, step=step,
                    train_loss=sum(losses) / len(losses), lr=lr, elapsed_s=elapsed_s)

    def record_evaluation(self, step: int, elapsed_s: float, result: EvalResult) -> None:
        """An evaluation on the validation split at ``step``."""
        self.record(eval_step=step, eval_elapsed_s=elapsed_s, val_miou=result.miou,
                    val_pixel_accuracy=result.pixel_accuracy, val_boundary_f=result.boundary_f,
                    val_iou=result.iou)

    def __getitem__(self, name: str) -> list:
        """``history["val_miou"]``: a list by the name that history.json gives it."""
        if name not in _NAMES:
            raise KeyError(name)
        return getattr(self, name)

    def to_dict(self) -> dict[str, list]:
        """Plain data: the lists recorded so far, as history.json and checkpoints hold them."""
        return {name: getattr(self, name) for name in _NAMES if getattr(self, name)}

    @classmethod
    def from_dict(cls, data: Mapping[str, list]) -> History:
        """A history from plain data (a checkpoint's, history.json, a kept record)."""
        unknown = [name for name in data if name not in _NAMES]
        if unknown:
            raise ValueError(f"a run's history has no {', '.join(map(repr, unknown))} (it "
                             f"records {', '.join(_NAMES)}); this is not a history of rnlib")
        return cls(**{name: list(values) for name, values in data.items()})


_NAMES = tuple(f.name for f in fields(History))
