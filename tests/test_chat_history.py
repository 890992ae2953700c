"""The SQLite history and the in-process broker's ordering, on a real database file.

A store whose writes wait for the test (``HeldStore``) shows what happens while a
transaction is on its way to the disk; nothing is mocked: SQLite really writes.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

import pytest

from sockhub.protocol.errors import BackendUnavailable, ChatNickTaken
from sockhub.server.limits import Limits
from sockhub.services.chat.broker import ChatNode, Direct, Event, Member, Message
from sockhub.services.chat.history import HistoryStore
from sockhub.services.chat.memory import MemoryBroker


class Node(ChatNode):
    """Records what the broker hands over, in order."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, object]] = []
        self.messages: list[Message] = []

    def deliver(self, batch: Sequence[Message]) -> None:
        self.seen += [("msg", (m.room, m.seq, m.text)) for m in batch]
        self.messages += batch

    def event(self, event: Event) -> None:
        self.seen.append(("event", (event.room, event.kind, event.nick)))

    def direct(self, dm: Direct, conns: Collection[str]) -> None:
        self.seen.append(("dm", (dm.to, sorted(conns))))

    def texts(self) -> list[bytes]:
        return [m.text for m in self.messages]


class HeldStore(HistoryStore):
    """Each write waits until the test lets it through; ``fail`` makes the next one fail."""

    def __init__(self, path: Path, keep: int = 100) -> None:
        super().__init__(path, keep)
        self.gate = threading.Event()
        self.gate.set()
        self.fail = False

    def _write(self, batch: Sequence[Message], reserved: Mapping[str, int]) -> None:
        self.gate.wait(10)
        if self.fail:
            self.fail = False
            raise sqlite3.OperationalError("disk I/O error (made by the test)")
        super()._write(batch, reserved)


def member(n: int) -> Member:
    return Member(f"m{n}", f"c{n}", None)


async def started(path: Path, store: HistoryStore | None = None) -> tuple[MemoryBroker, Node]:
    broker, node = MemoryBroker(store or HistoryStore(path, 100)), Node()
    await broker.start(node)
    return broker, node


async def test_store_batches_trims_and_reads(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "h.sqlite3", keep=3)
    assert await store.open() == {}
    batch = [Message("a", n, "w", float(n), b"a%d" % n) for n in range(1, 6)]
    await store.write([*batch, Message("b", 1, "w", 1.0, b"b1")], {"a": 2000, "b": 1500})
    assert [m.text for m in await store.read("a", since=0, count=0)] == [b"a3", b"a4", b"a5"]
    assert [m.seq for m in await store.read("a", since=None, count=2)] == [4, 5]
    assert [m.text for m in await store.read("b", since=None, count=9)] == [b"b1"]
    assert await store.read("nowhere", since=0, count=9) == []
    await store.write([Message("a", 6, "w", 6.0, b"a6")], {"a": 1000})  # a mark never drops
    await store.close()
    db = sqlite3.connect(tmp_path / "h.sqlite3")
    assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert db.execute("SELECT room, last_seq, reserved FROM rooms ORDER BY room").fetchall() == [
        ("a", 6, 2000),
        ("b", 1, 1500),
    ]
    db.close()


async def test_messages_and_events_keep_one_order(tmp_path: Path) -> None:
    broker, node = await started(tmp_path / "h.sqlite3")
    await broker.join("r", member(1), "one", since=None, count=0)
    acks = [broker.publish("r", "one", b"%d" % n) for n in range(3)]
    await broker.join("r", member(2), "two", since=None, count=0)
    acks.append(broker.publish("r", "two", b"last"))
    assert [await a for a in acks] == [1, 2, 3, 4]
    assert [kind for kind, _ in node.seen] == ["event", "msg", "msg", "msg", "event", "msg"]
    with pytest.raises(ChatNickTaken):
        await broker.join("r", member(3), "ONE", since=None, count=0)
    await broker.stop()


async def test_a_room_first_message_waits_for_the_disk_later_ones_do_not(tmp_path: Path) -> None:
    store = HeldStore(tmp_path / "h.sqlite3")
    broker, node = await started(tmp_path / "h.sqlite3", store)
    store.gate.clear()
    first = asyncio.ensure_future(broker.publish("r", "w", b"first"))
    for _ in range(5):
        await asyncio.sleep(0)  # let turns pass: nothing may go out before the write
    assert node.texts() == []
    store.gate.set()
    assert await first == 1 and node.texts() == [b"first"]
    store.gate.clear()
    second = asyncio.ensure_future(broker.publish("r", "w", b"second"))
    while node.texts() != [b"first", b"second"]:
        await asyncio.sleep(0)  # under the stored mark: out at the end of the turn
    assert not second.done()  # but the sender hears only once it is stored
    store.gate.set()
    assert await second == 2
    await broker.stop()


async def test_join_history_includes_messages_still_on_their_way(tmp_path: Path) -> None:
    store = HeldStore(tmp_path / "h.sqlite3")
    broker, node = await started(tmp_path / "h.sqlite3", store)
    await broker.publish("r", "w", b"stored")
    store.gate.clear()
    in_flight = asyncio.ensure_future(broker.publish("r", "w", b"in flight"))
    while node.texts() != [b"stored", b"in flight"]:
        await asyncio.sleep(0)
    waiting = asyncio.ensure_future(broker.publish("r", "w", b"not yet written"))
    while len(node.texts()) < 3:
        await asyncio.sleep(0)
    joining = asyncio.ensure_future(broker.join("r", member(1), "late", since=None, count=10))
    await asyncio.sleep(0)
    store.gate.set()
    joined = await joining
    assert [m.text for m in joined.history] == [b"stored", b"in flight", b"not yet written"]
    assert joined.seq == 3
    assert (await in_flight, await waiting) == (2, 3)
    await broker.stop()


async def test_numbering_never_goes_back_after_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    broker, _ = await started(path)
    assert [await broker.publish("r", "w", b"x") for _ in range(5)] == [1, 2, 3, 4, 5]
    await broker._store.close()  # a crash: the broker never stops cleanly
    broker, _ = await started(path)
    after = await broker.publish("r", "w", b"after the crash")
    assert 5 < after <= 5 + Limits().chat_seq_lookahead + 1
    await broker.stop()  # a clean stop: numbering goes on without a gap
    broker, _ = await started(path)
    assert await broker.publish("r", "w", b"next") == after + 1
    joined = await broker.join("r", member(1), "reader", since=0, count=0)
    assert [m.text for m in joined.history][-2:] == [b"after the crash", b"next"]
    await broker.stop()


async def test_a_failed_write_is_reported_to_the_sender(tmp_path: Path) -> None:
    store = HeldStore(tmp_path / "h.sqlite3")
    broker, node = await started(tmp_path / "h.sqlite3", store)
    store.fail = True
    with pytest.raises(BackendUnavailable):
        await broker.publish("r", "w", b"lost")
    assert node.texts() == []  # a room's first message waits for the disk: nobody saw it
    assert await broker.publish("r", "w", b"kept") == 2
    joined = await broker.join("r", member(1), "reader", since=0, count=0)
    assert [m.text for m in joined.history] == [b"kept"]
    await broker.stop()


async def test_direct_messages_reach_every_connection_holding_the_name(tmp_path: Path) -> None:
    broker, node = await started(tmp_path / "h.sqlite3")
    await broker.join("a", Member("m1", "c1", "bob"), "bobby", since=None, count=0)
    await broker.join("b", Member("m2", "c1", "bob"), "bobby", since=None, count=0)
    await broker.join("a", member(3), "Bob", since=None, count=0)
    assert await broker.direct(Direct("bob", "x", 0.0, b"hi"), "bob") == 2
    assert node.seen[-1] == ("dm", ("bob", ["c1", "c3"]))
    await broker.leave("a", member(3))
    assert await broker.direct(Direct("bob", "x", 0.0, b"hi"), "bob") == 1
    assert await broker.direct(Direct("zed", "x", 0.0, b"hi"), "zed") == 0
    await broker.stop()
