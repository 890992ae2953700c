"""One room's order on a node (services/chat/redis_order.py), with a stream the test holds.

What pub/sub brings is handed over in position order, each item once; a gap waits for
the stream, and a message neither pub/sub nor the stream has is skipped, its sender
told it was lost.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from sockhub.protocol.errors import BackendUnavailable
from sockhub.server.background import Background
from sockhub.services.chat.broker import Event, Message
from sockhub.services.chat.redis_order import Item, RoomOrder

from .test_chat_brokers import Node


def msg(seq: int) -> Message:
    return Message("r", seq, "w", 1.0, b"m%d" % seq)


def batch(first: int, last: int) -> Item:
    return Item(first, last, messages=tuple(msg(s) for s in range(first, last + 1)))


def event(after: int, k: int, nick: str) -> Item:
    return Item(after, after, k, event=Event("r", "join", nick, 1.0, "x"))


class Stream:
    """The room's stream as the test fills it; ``reads`` records each repair's range."""

    def __init__(self) -> None:
        self.kept: dict[int, Message] = {}
        self.reads: list[tuple[int, int]] = []

    async def read(self, after: int, upto: int) -> list[Message]:
        self.reads.append((after, upto))
        return [self.kept[s] for s in sorted(self.kept) if after < s <= upto]


async def until(condition: Callable[[], bool]) -> None:
    """Let the loop turn (the repair runs on a timer) until ``condition`` holds."""
    for _ in range(10_000):
        if condition():
            return
        await asyncio.sleep(0.001)
    raise TimeoutError


async def test_items_go_out_in_position_order_once() -> None:
    node, stream = Node(), Stream()
    order = RoomOrder(node, stream.read, Background())
    order.arrive(batch(1, 2))  # before the first join: held
    order.start_at((2, 1))  # joined after message 2, as the first event after it
    order.arrive(event(2, 1, "me"))  # its own join event
    order.arrive(batch(3, 4))
    order.arrive(event(4, 1, "bob"))
    order.arrive(batch(3, 4))  # a repeat: dropped
    order.arrive(event(4, 2, "cy"))
    order.arrive(batch(5, 5))
    assert node.seen == [
        ("event", ("r", "join", "me")),
        ("msg", ("r", 3, b"m3")),
        ("msg", ("r", 4, b"m4")),
        ("event", ("r", "join", "bob")),
        ("event", ("r", "join", "cy")),
        ("msg", ("r", 5, b"m5")),
    ]
    assert stream.reads == []
    order.close()


async def test_a_gap_is_read_back_from_the_stream() -> None:
    node, stream = Node(), Stream()
    order = RoomOrder(node, stream.read, Background())
    order.start_at((0, 1))
    order.arrive(batch(1, 1))
    stream.kept = {s: msg(s) for s in range(1, 6)}
    order.arrive(event(3, 1, "bob"))  # messages 2 and 3 never came over pub/sub
    order.arrive(batch(4, 5))
    assert [m.seq for m in node.messages] == [1]
    await until(lambda: len(node.messages) == 5)
    assert stream.reads == [(1, 5)]
    kinds = [(kind, seen[1]) for kind, seen in node.seen]
    assert kinds == [("msg", 1), ("msg", 2), ("msg", 3), ("event", "join"), ("msg", 4), ("msg", 5)]
    order.close()


async def test_a_lost_message_is_skipped_and_its_sender_told() -> None:
    node, stream = Node(), Stream()
    order = RoomOrder(node, stream.read, Background())
    order.start_at((0, 1))
    lost: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    kept: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    order.wait(1, lost)
    order.wait(2, kept)
    order.known(2)  # a script said 1 and 2 exist; Redis then lost 1 (restart)
    order.arrive(batch(2, 2))
    with pytest.raises(BackendUnavailable):
        await lost
    assert await kept == 2
    assert [m.seq for m in node.messages] == [2]
    early: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    order.wait(2, early)  # pub/sub beat the script's reply: answered at once
    assert early.result() == 2
    order.close()
