"""``Coalesced``: the changes of a loop turn, and of the time a call was in flight, go
out in one call; one call at a time; its failure reaches every change it carried."""

from __future__ import annotations

import asyncio

import pytest

from sockhub.services.chat.coalesce import Coalesced


class Recorder:
    def __init__(self) -> None:
        self.calls: list[set[int]] = []
        self.gate: asyncio.Event | None = None
        self.fail: Exception | None = None
        self.running = 0

    async def write(self, keys: set[int]) -> None:
        self.running += 1
        assert self.running == 1  # never two at once
        try:
            self.calls.append(keys)
            if self.gate is not None:
                await self.gate.wait()
            if self.fail is not None:
                raise self.fail
        finally:
            self.running -= 1


async def test_one_call_per_turn_and_one_for_what_came_meanwhile() -> None:
    rec = Recorder()
    writes = Coalesced(rec.write)
    rec.gate = asyncio.Event()
    first = [asyncio.ensure_future(writes.changed([n])) for n in range(1000)]
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    later = [asyncio.ensure_future(writes.changed([n, n + 1])) for n in range(5)]
    await asyncio.sleep(0)
    assert rec.calls == [set(range(1000))]
    rec.gate.set()
    await asyncio.gather(*first, *later)
    assert rec.calls == [set(range(1000)), set(range(6))]
    await writes.changed([])  # nothing changed: no call
    assert len(rec.calls) == 2


async def test_a_failure_reaches_every_change_it_carried_and_the_next_call_runs() -> None:
    rec = Recorder()
    writes = Coalesced(rec.write)
    rec.fail = ConnectionError("Redis is gone")
    results = await asyncio.gather(writes.changed([1]), writes.changed([2]), return_exceptions=True)
    assert [type(r) for r in results] == [ConnectionError, ConnectionError]
    rec.fail = None
    await writes.changed([3])
    assert rec.calls == [{1, 2}, {3}]


async def test_a_cancelled_caller_does_not_cancel_the_others() -> None:
    rec = Recorder()
    writes = Coalesced(rec.write)
    rec.gate = asyncio.Event()
    impatient = asyncio.ensure_future(writes.changed([1]))
    patient = asyncio.ensure_future(writes.changed([2]))
    await asyncio.sleep(0)
    impatient.cancel()
    with pytest.raises(asyncio.CancelledError):
        await impatient
    rec.gate.set()
    await patient
    await writes.idle()
    assert rec.calls == [{1, 2}]
