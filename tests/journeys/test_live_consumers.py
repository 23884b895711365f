"""Live sockets of one process share a frame computed for the same numbers within
SHARE_SECONDS (a change pings every open page at once), and compute afresh after."""

from __future__ import annotations

import asyncio

from journeys import consumers


class _Counting(consumers.LiveNumbersConsumer):
    computed = 0

    def __init__(self, group: str):
        self.group = group

    async def frame(self) -> dict:
        type(self).computed += 1
        await asyncio.sleep(0.01)  # a database read takes a while
        return {"type": "metrics", "n": type(self).computed}


def test_sockets_of_one_group_share_a_frame_then_compute_afresh():
    async def scenario():
        consumers._shared_frames.clear()
        _Counting.computed = 0
        pages = [_Counting("journey-1") for _ in range(100)]
        first = await asyncio.gather(*(page._shared_frame() for page in pages))
        other = await _Counting("journey-2")._shared_frame()
        await asyncio.sleep(consumers.SHARE_SECONDS + 0.05)
        later = await pages[0]._shared_frame()
        return first, other, later

    first, other, later = asyncio.run(scenario())
    # 100 sockets of journey 1 got one computation; journey 2 its own; later, a new one.
    assert {frame["n"] for frame in first} == {1}
    assert other["n"] == 2
    assert later["n"] == 3
    assert _Counting.computed == 3
