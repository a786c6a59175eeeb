"""One submission graded: its cells run in a kernel, each exercise checked after the cell that
defines it, the kernel restarted when it dies or has to be killed.

The kernel runs in a private folder that holds only a copy of the submission. Before any of
the student's cells, the grader's own cell (:mod:`rnlib.grading.guard`) imports the checkers
and records the modules they rely on. The student's cells then run in order, but only up to the
last cell that defines an exercise: a cell after it (such as the course's summary cell) never
runs. Right after the cell that defines an exercise, the guard checks it. A cell that stops its
kernel (``os._exit``, a kill, an ignored interrupt) is left out when the kernel is restarted,
and the cells before it run again for the exercises still to check.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from ..grade import FAILED, NOT_ATTEMPTED, NOT_GRADED, VERDICTS, Exercise, Result
from .kernel import STARTUP, Kernel, KernelStopped
from .submission import defining_cells, one_line

SETUP = '__import__("rnlib.grading.guard", fromlist=["_"]).install({verdicts!r}, {seed!r})'
CHECK = '__import__("rnlib.grading.guard", fromlist=["_"]).check({exercise!r}, globals())'


@dataclass(frozen=True)
class Limits:
    """Seconds: for each cell (and each check), and for the whole notebook."""

    cell: float
    notebook: float


class GradingError(Exception):
    """The grader could not run here (no kernel, or rnlib does not import in it)."""


class _OutOfTime(Exception):
    pass


class _Session:
    """A kernel for one submission, started (again) when needed, under the notebook's limit."""

    def __init__(self, sources: list[str], folder: Path, verdicts: Path, seed: int | None,
                 limits: Limits) -> None:
        self.sources, self.folder, self.verdicts, self.seed = sources, folder, verdicts, seed
        self.limits = limits
        self.deadline = time.monotonic() + limits.notebook
        self.kernel: Kernel | None = None
        self.ran: list[int] = []  # the cells run so far, in order
        self.stopped: set[int] = set()  # those that stopped the kernel: left out from now

    def _timeout(self, limit: float | None = None) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise _OutOfTime
        return min(self.limits.cell if limit is None else limit, left)

    def _start(self) -> None:
        while self.kernel is None:
            startup = self._timeout(STARTUP)
            try:
                self.kernel = Kernel(self.folder, startup)
            except Exception as err:
                if time.monotonic() >= self.deadline:  # it had only the notebook's time left
                    raise _OutOfTime from None
                raise GradingError(f"the kernel did not start ({one_line(err)})") from None
            setup = SETUP.format(verdicts=str(self.verdicts), seed=self.seed)
            try:  # importing torch may take longer than a cell's limit
                status = self.kernel.run(setup, self._timeout(STARTUP))
            except KernelStopped as err:
                raise GradingError(f"the grader's setup stopped: {err}") from None
            if status == "timeout":
                raise _OutOfTime
            if status != "ok":
                raise GradingError("the grader's setup failed in the kernel: is rnlib "
                                   "installed for the python3 kernel?")
            for i in self.ran:
                if i not in self.stopped and not self._cell(i):
                    break

    def _cell(self, i: int) -> bool:
        """Run cell ``i``; False when it stopped the kernel (it will be left out from now)."""
        assert self.kernel is not None
        try:
            self.kernel.run(self.sources[i], self._timeout())
        except KernelStopped:
            self.kernel = None
            self.stopped.add(i)
            return False
        return True

    def cell(self, i: int) -> None:
        self._start()
        self._cell(i)
        self.ran.append(i)

    def check(self, exercise: Exercise) -> Result:
        self._start()
        assert self.kernel is not None
        timeout = self._timeout()

        def failed(message: str) -> Result:
            return Result(exercise.id, exercise.name, FAILED, message)

        try:
            status = self.kernel.run(CHECK.format(exercise=exercise.id), timeout)
        except KernelStopped as err:
            self.kernel = None
            return failed(f"its check stopped: {err}")
        if status == "timeout":
            return failed(f"its check did not finish within {timeout:g} s")
        try:
            verdict = Result(**json.loads((self.verdicts / f"{exercise.id}.json").read_text()))
        except (OSError, ValueError, TypeError):
            return failed("its check stopped without a verdict")
        if (verdict.exercise, verdict.name) != (exercise.id, exercise.name) or \
                verdict.status not in VERDICTS:
            return failed("its check stopped without a verdict")
        return verdict

    def close(self) -> None:
        if self.kernel is not None:
            self.kernel.close()
            self.kernel = None


def grade_cells(sources: list[str], exercises: list[Exercise], folder: Path, verdicts: Path,
                seed: int | None, limits: Limits) -> list[Result]:
    """The verdict on each exercise of a notebook whose code cells are ``sources``, run in
    ``folder``; the guard writes its verdicts to ``verdicts``. GradingError when no kernel
    can run the grader."""
    where = defining_cells(sources, [e.name for e in exercises])
    results = {e.id: Result(e.id, e.name, NOT_ATTEMPTED, f"{e.name} is not defined in the "
                            "notebook") for e in exercises if where[e.name] is None}
    todo = sorted(((where[e.name], e) for e in exercises if e.id not in results),
                  key=lambda item: item[0])
    session = _Session(sources, folder, verdicts, seed, limits)
    try:
        ran = -1
        for last, exercise in todo:
            while ran < last:
                ran += 1
                session.cell(ran)
            results[exercise.id] = session.check(exercise)
    except _OutOfTime:
        for _, e in todo:
            results.setdefault(e.id, Result(e.id, e.name, NOT_GRADED, "the notebook ran past "
                                            f"its time limit of {limits.notebook:g} s"))
    finally:
        session.close()
    return [results[e.id] for e in exercises]

