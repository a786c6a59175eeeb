"""The notebook client of the course's tools waits in steps: a reply whose wake-up was lost
(jupyter/nbclient#312) is found within a step, not at the end of the cell's time-out."""

import asyncio
import sys
from pathlib import Path
from queue import Empty
from time import monotonic

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import notebook_client  # noqa: E402


def _lost_wake_up(ready_at: float):
    """A channel's get_msg whose message arrives at ``ready_at`` without waking the poll: as
    pyzmq does, it looks at the socket only when a poll's time-out ends."""

    async def get_msg(timeout=None):
        if timeout is None:
            await asyncio.Event().wait()  # never woken
        await asyncio.sleep(timeout)
        if monotonic() >= ready_at:
            return {"msg_type": "execute_reply"}
        raise Empty

    return get_msg


@pytest.fixture(autouse=True)
def short_steps(monkeypatch):
    monkeypatch.setattr(notebook_client, "STEP_S", 0.05)


def test_a_reply_without_its_wake_up_comes_within_a_step():
    started = monotonic()
    get_msg = notebook_client.in_steps(_lost_wake_up(started + 0.2))
    for timeout in (None, 30.0):  # within 5 s: not at the 30 s time-out, nor never
        reply = asyncio.run(asyncio.wait_for(get_msg(timeout=timeout), 5))
        assert reply == {"msg_type": "execute_reply"}


def test_the_time_out_still_ends_the_wait():
    started = monotonic()
    with pytest.raises(Empty):
        asyncio.run(notebook_client.in_steps(_lost_wake_up(started + 3600))(timeout=0.3))
    assert 0.3 <= monotonic() - started < 1.5
