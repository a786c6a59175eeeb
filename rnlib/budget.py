"""How long a run trains: a number of optimizer steps, from ``steps``, ``epochs`` or seconds.

Steps and epochs make a result independent of the machine's speed, so the course and
``rnlib compare`` budget in them. A time budget (``time_budget_s``) asks a practitioner's
question instead, quality per second; it is turned into steps from a measured pace and
re-planned as the run goes, since a shared machine's pace drifts.
"""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .config import TrainConfig

__all__ = ["BUDGET_ENV", "budget_scale", "describe_budget", "Budget"]

BUDGET_ENV = "RNLIB_BUDGET_SCALE"
# a time-budgeted run measures its pace from step PACE_FROM on and re-plans its length at step
# PACE_TO and every REPLAN_EVERY steps after, so that it ends on its budget
PACE_FROM, PACE_TO, REPLAN_EVERY = 3, 13, 10


def budget_scale() -> float:
    """``RNLIB_BUDGET_SCALE`` (default 1): multiplies every training budget, in steps, epochs or
    seconds. The test suite sets it below 1 to shorten training; results then are not the
    documented ones."""
    value = os.environ.get(BUDGET_ENV, "1")
    try:
        scale = float(value)
    except ValueError:
        raise ValueError(f"{BUDGET_ENV} must be a number such as 0.1, got {value!r}") from None
    if not (0 < scale < math.inf):
        raise ValueError(f"{BUDGET_ENV} must be a finite number > 0, got {scale}")
    return scale


def describe_budget(config: TrainConfig) -> str:
    """A config's budget in words, as it was given: "200 steps x RNLIB_BUDGET_SCALE 1",
    "8 epochs x ..." or "60 s of training x ..."."""
    if config.time_budget_s is not None:
        given = f"{config.time_budget_s:g} s of training"
    elif config.steps is not None:
        given = f"{config.steps} steps"
    else:
        given = f"{config.epochs} epoch{'s' if config.epochs != 1 else ''}"
    return f"{given} x {BUDGET_ENV} {budget_scale():g}"


class Budget:
    """The run's total number of optimizer steps, ``total_steps``.

    ``steps`` or ``epochs`` x ``steps_per_epoch`` fix it; with ``seconds``, :meth:`plan` sets it
    from a measured time per step and :meth:`observe` re-plans it from the run's own pace.
    """

    def __init__(self, *, steps_per_epoch: int, epochs: int, steps: int | None = None,
                 seconds: float | None = None) -> None:
        scale = budget_scale()
        self.seconds = seconds * scale if seconds is not None else None
        fixed = steps if steps is not None else epochs * steps_per_epoch
        self.total_steps = max(1, round(fixed * scale))
        self._pace_start: tuple[int, float] | None = None

    @property
    def timed(self) -> bool:
        return self.seconds is not None

    def plan(self, seconds_per_step: float) -> None:
        """Set the length of a time-budgeted run from a measured time per step."""
        self.total_steps = max(1, int(self.seconds / seconds_per_step))

    def observe(self, step: int, seconds: float) -> bool:
        """After ``step`` steps and ``seconds`` of training, re-plan a time-budgeted run from its
        pace; True when the length changed."""
        if not self.timed:
            return False
        if step == PACE_FROM:
            self._pace_start = (step, seconds)
        if self._pace_start is None or step < PACE_TO or (step - PACE_TO) % REPLAN_EVERY:
            return False
        first_step, first_seconds = self._pace_start
        pace = (seconds - first_seconds) / (step - first_step)
        before = self.total_steps
        self.total_steps = step + max(1, int((self.seconds - seconds) / pace))
        return self.total_steps != before
