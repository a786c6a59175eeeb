"""SIGTERM as Ctrl-C for every subcommand, and the exit status of a stopped command."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

__all__ = ["sigterm_interrupts", "exit_status"]


class _Terminated(KeyboardInterrupt):
    signum = signal.SIGTERM


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """SIGTERM as a KeyboardInterrupt (training takes it over as a stop request): the command
    unwinds, removing its temporary files, instead of dying where it stands."""
    def terminate(signum: int, frame: object) -> None:
        raise _Terminated

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def exit_status(err: BaseException) -> int:
    """The shell's status of a command stopped by ``err``: 128 + the signal, 130 for Ctrl-C
    (SIGINT), 143 for SIGTERM."""
    return 128 + int(getattr(err, "signum", signal.SIGINT))
