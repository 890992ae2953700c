"""How AsyncClient puts frames on the wire: a lone frame at once, a burst joined, order kept."""

from __future__ import annotations

import asyncio
from typing import Any

from sockhub import AsyncClient
from sockhub.client.aio_writer import FLUSH_AT as _FLUSH_AT
from sockhub.client.aio_writer import WRITE_NOW as _WRITE_NOW

from .conftest import RunningServer


class CountingTransport:
    """Delegates to the real transport and records the size of every write."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.writes: list[int] = []

    def write(self, data: bytes) -> None:
        self.writes.append(len(data))
        self.inner.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _count(client: AsyncClient) -> CountingTransport:
    counting = CountingTransport(client.writer.transport)
    client.writer.transport = counting  # type: ignore[assignment]
    return counting


def _in_completion_order(futures: list[asyncio.Future[Any]]) -> list[int]:
    order: list[int] = []
    for i, future in enumerate(futures):
        future.add_done_callback(lambda _f, i=i: order.append(i))
    return order


async def test_a_lone_request_is_written_before_the_loop_turns(srv: RunningServer) -> None:
    async with await AsyncClient.connect(srv.address, keepalive=False) as c:
        counting = _count(c)
        future = c.request("echo", b"now")
        assert len(counting.writes) == 1
        assert (await future).body == b"now"


async def test_a_burst_leaves_in_few_writes_and_in_order(srv: RunningServer) -> None:
    async with await AsyncClient.connect(srv.address, keepalive=False) as c:
        counting = _count(c)
        futures = []
        for i in range(500):
            futures.append(c.request("echo", str(i).encode()))
            c.send("ping")  # no id, no reply: only its place in the stream matters
        order = _in_completion_order(futures)
        replies = await asyncio.gather(*futures)
        assert [r.body for r in replies] == [str(i).encode() for i in range(500)]
        assert order == list(range(500))
        assert len(counting.writes) <= 2 + sum(counting.writes) // _FLUSH_AT
        assert max(counting.writes[1:]) < _FLUSH_AT + 200


async def test_a_big_frame_does_not_overtake_queued_ones(srv: RunningServer) -> None:
    async with await AsyncClient.connect(srv.address, keepalive=False) as c:
        counting = _count(c)
        big = b"x" * _WRITE_NOW
        futures = [c.request("echo", b"a"), c.request("echo", b"b"), c.request("echo", big)]
        futures.append(c.request("echo", b"c"))
        order = _in_completion_order(futures)
        replies = await asyncio.gather(*futures)
        assert [r.body for r in replies] == [b"a", b"b", big, b"c"]
        assert order == [0, 1, 2, 3]
        assert len(counting.writes) == 4  # a at once; b flushed before big; big; c at turn end


async def test_drain_writes_what_is_queued(srv: RunningServer) -> None:
    async with await AsyncClient.connect(srv.address, keepalive=False) as c:
        counting = _count(c)
        futures = [c.request("echo", b"first"), c.request("echo", b"queued")]
        assert len(counting.writes) == 1
        await c.drain()
        assert len(counting.writes) == 2
        assert [(await f).body for f in futures] == [b"first", b"queued"]
