"""A run's folder: one run at a time, no silent overwrite, and a disk that can take it.

- One run per folder: a run holds an exclusive ``fcntl.flock`` on ``OUT/.lock`` (the operating
  system releases it when the process dies, ``kill -9`` included); a second run into the same
  folder is refused with the PID of the one that holds it. Taking the lock removes the
  temporary files of a save that a ``kill -9`` cut short.
- A folder that holds a checkpoint is continued with ``resume`` or trained anew with
  ``overwrite`` (the old checkpoint is kept as ``last.pt.bak``); neither is refused. ``resume``
  without a checkpoint is refused too: it is a typo, not a new run.
- The disk: free space is checked against the checkpoint's size before the first step, and a
  save that fails for a full or read-only disk is one line that names the folder and the
  command that resumes, the previous checkpoint kept.
"""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import sys
from pathlib import Path

from .atomic import write_text_atomic
from .checkpoint import CHECKPOINT, save_checkpoint
from .folders import check_writable

__all__ = ["LOCK", "HISTORY", "BACKUP", "FolderBusyError", "RunLock", "RunFolder", "start_rule",
           "back_up", "check_free_space", "save_failure"]

LOCK = ".lock"
HISTORY = "history.json"
BACKUP = CHECKPOINT + ".bak"
DISK_ERRORS = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is used up",
               errno.EROFS: "the disk is read-only", errno.EACCES: "permission denied",
               errno.EPERM: "permission denied", errno.EIO: "an input/output error"}


class FolderBusyError(OSError):
    """Another process is training into the folder."""


def _os_error(code: int | None, message: str) -> OSError:
    """An OSError that prints as ``message`` alone (no "[Errno N]") and keeps ``errno``."""
    err = OSError(message)
    err.errno = code
    return err


class RunLock:
    """An exclusive lock on a run's folder (made if missing) for as long as the block runs.
    Raises :class:`FolderBusyError` naming the PID that holds it, or an OSError saying the
    folder cannot be written."""

    def __init__(self, folder: str | Path) -> None:
        self.folder, self._fd = Path(folder), -1

    def __enter__(self) -> RunLock:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.folder / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise _os_error(err.errno, f"cannot write checkpoints to {self.folder}: "
                                       f"{err.strerror}; choose another output folder (--out)"
                            ) from err
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise FolderBusyError(f"another run (PID {holder}) is training into {self.folder}; "
                                  f"wait for it to end, or choose another --out") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        for name in (CHECKPOINT, HISTORY):  # left by a save that kill -9 cut: no one else
            for stale in self.folder.glob(f".{name}.*.tmp"):  # writes here while we hold it
                stale.unlink(missing_ok=True)
        return self

    def __exit__(self, *exc) -> None:
        os.close(self._fd)  # releases the lock; the file stays (removing it would race)
        self._fd = -1


def start_rule(folder: str | Path, resume: bool, overwrite: bool) -> bool:
    """Whether a run into ``folder`` continues its checkpoint: True with ``resume`` (which
    needs one), False without a checkpoint or, when there is one, with ``overwrite``; else a
    ValueError that says which flag to pass."""
    checkpoint = Path(folder) / CHECKPOINT
    if checkpoint.exists():
        if not (resume or overwrite):
            raise ValueError(f"{folder} already holds a run ({checkpoint}); continue it with "
                             f"--resume (resume=True), train anew with --overwrite (keeps it "
                             f"as {BACKUP}), or choose another --out")
        return resume
    if resume:
        raise FileNotFoundError(f"--resume, but {folder} holds no checkpoint ({CHECKPOINT}); "
                                f"check the folder, or train without --resume")
    return False


def back_up(folder: str | Path) -> None:
    """Keep an overwritten run's checkpoint as ``last.pt.bak`` (replacing an older backup),
    and say so."""
    checkpoint = Path(folder) / CHECKPOINT
    if checkpoint.exists():
        os.replace(checkpoint, checkpoint.with_name(BACKUP))
        print(f"rnlib: {folder} held a run; its checkpoint is kept as {BACKUP}",
              file=sys.stderr)


def check_free_space(folder: str | Path, need: int) -> None:
    """An OSError (ENOSPC) when ``folder``'s disk has less than ``need`` bytes free."""
    free = shutil.disk_usage(folder).free
    if free < need:
        raise _os_error(errno.ENOSPC, f"{folder} has {free / 2**20:.1f} MB free, but a checkpoint "
                                    f"of this run takes about {need / 2**20:.1f} MB; free space, "
                                    f"or choose another --out")


def save_failure(err: OSError, folder: Path, kept_step: int | None) -> OSError:
    """The one-line error of a save that the disk refused: what, where, what was kept, and
    the command that resumes."""
    why = DISK_ERRORS.get(err.errno, err.strerror or str(err))
    kept = (f"{folder / CHECKPOINT} still holds step {kept_step}" if kept_step is not None
            else "no checkpoint was written yet")
    return _os_error(err.errno, f"cannot save a checkpoint in {folder}: {why}; {kept}. Free "
                              f"space (or make it writable), then continue with rnlib train "
                              f"--resume --out {folder}")


class RunFolder:
    """A run's folder as the Trainer uses it: the rules to start in it (:meth:`open`), the
    checkpoint and history written atomically (:meth:`write`), and the step its checkpoint
    holds, which every message about a stopped run names."""

    def __init__(self, path: str | Path) -> None:
        self.path, self.saved_step = Path(path), None
        self.checkpoint = self.path / CHECKPOINT

    def open(self, resume: bool, overwrite: bool, need: int) -> bool:
        """Apply :func:`start_rule`; for a new run also probe the folder, keep an old
        checkpoint as a backup and check for ``need`` bytes free. Returns whether to resume."""
        restore = start_rule(self.path, resume, overwrite)
        check_writable(self.path, "checkpoints", "choose another output folder")
        if not restore:
            back_up(self.path)
        check_free_space(self.path, need)
        return restore

    def write(self, state: dict, history: str) -> None:
        """Save ``state`` (a checkpoint, with its ``step``) and ``history`` (JSON text); a
        full or read-only disk is one OSError that keeps the previous checkpoint."""
        try:
            save_checkpoint(state, self.checkpoint)
            self.saved_step = state["step"]
            write_text_atomic(self.path / HISTORY, history)
        except OSError as err:
            raise save_failure(err, self.path, self.saved_step) from err

    def stopped(self, what: str, step: int) -> str:
        """``what`` happened in step ``step + 1``, after a checkpoint of ``step``."""
        return (f"{what} at step {step + 1}; {self.checkpoint} holds step {step}: continue "
                f"with resume=True (rnlib train --resume)")

    def kept(self, what: str) -> str:
        """``what`` happened and the weights are not whole: what the folder still holds."""
        if self.saved_step is None:
            return f"{what}; no checkpoint was written yet: train again"
        return (f"{what}; {self.checkpoint} still holds step {self.saved_step}: continue with "
                f"resume=True (rnlib train --resume)")
