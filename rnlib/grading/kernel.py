"""A Jupyter kernel that runs one cell at a time under a time limit, and can be killed.

A cell past its limit is interrupted; one that ignores the interrupt for :data:`GRACE` seconds
has its kernel killed (with its process group). Outputs are read and thrown away as they come,
so a cell that prints without end costs neither memory nor time here.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from queue import Empty

import zmq

GRACE = 5.0  # seconds a cell has to stop after an interrupt before its kernel is killed
STARTUP = 120.0  # seconds a kernel has to start
_POLL = 0.2  # seconds between looks at the kernel while a cell runs
_DRAIN = 1000  # output messages discarded per look at most


class KernelStopped(Exception):
    """The kernel is gone: it exited, was killed, or was killed here; the message says which."""


class Kernel:
    """A fresh ``python3`` kernel in the folder ``cwd`` (it inherits this environment), ready
    within ``startup`` seconds or RuntimeError."""

    def __init__(self, cwd: Path, startup: float = STARTUP) -> None:
        from jupyter_client.manager import KernelManager

        self.manager = KernelManager(kernel_name="python3")
        self.manager.start_kernel(cwd=str(cwd), stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        self.client = self.manager.client()
        try:
            self.client.start_channels()
            self.client.wait_for_ready(timeout=startup)
        except BaseException:
            self.close()
            raise

    def run(self, code: str, timeout: float) -> str:
        """Run ``code``: "ok", "error" (it raised), or "timeout" (it stopped when interrupted
        after ``timeout`` seconds). KernelStopped when the kernel died or had to be killed."""
        msg_id = self.client.execute(code, store_history=False, allow_stdin=False,
                                     stop_on_error=False)
        deadline, interrupted = time.monotonic() + timeout, False
        while True:
            self._drain()
            try:
                reply = self.client.get_shell_msg(timeout=_POLL)
            except Empty:
                if not self.manager.is_alive():
                    self.close()
                    raise KernelStopped(
                        "the kernel died (the process exited or was killed)") from None
                if time.monotonic() < deadline:
                    continue
                if interrupted:
                    self.close()
                    raise KernelStopped(f"it ran past {timeout:g} s and ignored the interrupt, "
                                        "so its kernel was killed") from None
                self.manager.interrupt_kernel()
                deadline, interrupted = time.monotonic() + GRACE, True
                continue
            if reply["parent_header"].get("msg_id") == msg_id:
                return "timeout" if interrupted else reply["content"]["status"]

    def _drain(self) -> None:
        socket = self.client.iopub_channel.socket
        for _ in range(_DRAIN):
            try:
                socket.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return

    def close(self) -> None:
        """Stop the kernel now (SIGKILL to its process group); safe to call twice."""
        try:
            self.client.stop_channels()
        finally:
            if self.manager.has_kernel:
                self.manager.shutdown_kernel(now=True)
