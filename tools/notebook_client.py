"""nbclient's NotebookClient without its lost wake-up (jupyter/nbclient#312, open).

A cell that shows an ipywidget sometimes finishes in the kernel while the client goes on
waiting: the kernel's reply is in the socket, but the asyncio poll that waits for it is never
woken. pyzmq looks at the socket once more when the poll's time-out ends, so the reply arrives
exactly then: notebook 08's slider cell once took the whole 900 s of benchmarks/course_time.py's
time-out, with the kernel idle. Waiting in steps of :data:`STEP_S` looks at the socket every
step, so a missed wake-up costs a second, and a cell's time-out stays what it was.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from queue import Empty
from time import monotonic
from typing import Any

from nbclient import NotebookClient

STEP_S = 1.0


def in_steps(get_msg: Callable[..., Awaitable[dict]]) -> Callable[..., Awaitable[dict]]:
    """``get_msg(timeout)`` of a kernel client's channel, waiting at most :data:`STEP_S` per
    poll: the same message, or Empty when ``timeout`` (None: none) has passed."""

    async def get_msg_in_steps(timeout: float | None = None) -> dict:
        deadline = None if timeout is None else monotonic() + timeout
        while True:
            left = STEP_S if deadline is None else max(0.0, deadline - monotonic())
            try:
                return await get_msg(timeout=min(STEP_S, left))
            except Empty:
                if deadline is not None and monotonic() >= deadline:
                    raise

    return get_msg_in_steps


class SteppingNotebookClient(NotebookClient):
    """A NotebookClient whose shell and IOPub channels wait :func:`in_steps`."""

    async def async_start_new_kernel_client(self) -> Any:
        client = await super().async_start_new_kernel_client()
        for channel in (client.shell_channel, client.iopub_channel):
            channel.get_msg = in_steps(channel.get_msg)
        return client
