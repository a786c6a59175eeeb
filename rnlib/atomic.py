"""Atomic file writes: a temporary file of a unique name beside the target, fsync'd, renamed
over the target, and the folder fsync'd, so that a crash, a kill or a full disk leaves either
the old file or the new one, never half of one, and no temporary file behind.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

__all__ = ["write_atomic", "write_text_atomic", "fsync_folder", "os_error", "check_output"]


def fsync_folder(folder: str | Path) -> None:
    """Make a rename in ``folder`` durable (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems do not sync folders; the rename itself is still atomic
    finally:
        os.close(fd)


def os_error(err: BaseException) -> OSError | None:
    """The OSError behind ``err``: itself, or the one that torch's writer turned into a
    RuntimeError ("unexpected pos ...") when a write to a Python file failed."""
    seen = err
    while seen is not None:
        if isinstance(seen, OSError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _mode(path: Path) -> int:
    """The permissions a new ``path`` gets: the old file's, else 0666 less the umask."""
    try:
        return path.stat().st_mode & 0o777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def write_atomic(path: str | Path, write: Callable[[BinaryIO], object]) -> None:
    """Call ``write(file)`` on a new temporary file beside ``path``, then put it in place.
    On any failure the temporary file is removed and ``path`` is left as it was; an OSError
    hidden inside another error (torch's) is raised as itself."""
    path = Path(path)
    file = tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.",
                                       suffix=".tmp", delete=False)
    try:
        with file:
            os.fchmod(file.fileno(), _mode(path))  # not the temporary file's private 0600
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(file.name, path)
    except BaseException as err:
        with contextlib.suppress(OSError):
            os.unlink(file.name)
        cause = os_error(err)
        if cause is not None and cause is not err:
            raise cause from err
        raise
    fsync_folder(path.parent)


def write_text_atomic(path: str | Path, text: str) -> None:
    """``path.write_text(text)``, atomically."""
    write_atomic(path, lambda f: f.write(text.encode()))


def check_output(out: str | Path, inputs: tuple[str | Path, ...], suffixes: tuple[str, ...],
                 what: str) -> Path:
    """``out`` as a Path, after checking, before anything is written, that it is none of
    ``inputs`` and ends in one of ``suffixes``; else a ValueError that says what to pass."""
    out = Path(out)
    for given in inputs:
        if Path(given).exists() and out.exists() and os.path.samefile(out, given) \
                or Path(given).resolve() == out.resolve():
            raise ValueError(f"the output {out} is the input {given}: writing it would destroy "
                             f"the input; choose another --out")
    if out.suffix.lower() not in suffixes:
        raise ValueError(f"{what} must end in {' or '.join(suffixes)}, got {out.name!r}; "
                         f"choose another --out")
    return out
