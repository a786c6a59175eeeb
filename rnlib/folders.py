"""Output folders: checked writable before any work goes into them."""

from __future__ import annotations

import tempfile
from pathlib import Path

__all__ = ["check_writable"]


def check_writable(folder: str | Path, what: str, fix: str) -> None:
    """Make ``folder`` and write (then remove) a uniquely named probe file in it, so that a
    run that cannot save fails now rather than after minutes of training, and overwrites
    nothing. Raises one
    OSError naming ``what`` would be written, the folder, the reason and ``fix``."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):  # a unique name, removed on close
            pass
    except OSError as err:
        raise OSError(f"cannot write {what} to {folder}: {err.strerror or err}; {fix}") from err
