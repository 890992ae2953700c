"""The SQLite history and the in-process broker's ordering, on a real database file, and
scroll-back (``chat.history``) on the wire.

A store whose writes wait for the test (``HeldStore``) shows what happens while a
transaction is on its way to the disk; nothing is mocked: SQLite really writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from collections.abc import Collection, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from sockhub import Client
from sockhub.protocol.errors import (
    AuthRequired,
    BackendUnavailable,
    BadRequest,
    ChatNickTaken,
    LimitRate,
)
from sockhub.protocol.frames import Frame
from sockhub.server.limits import Limits
from sockhub.services.chat.broker import ChatNode, Direct, Event, Member, Message
from sockhub.services.chat.history import HistoryStore
from sockhub.services.chat.memory import MemoryBroker

from .client_support import connect_either
from .conftest import RunningServer, running_server
from .test_chat_service import ChatPeer


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


async def test_scroll_back_includes_messages_still_on_their_way(tmp_path: Path) -> None:
    store = HeldStore(tmp_path / "h.sqlite3")
    broker, node = await started(tmp_path / "h.sqlite3", store)
    for n in range(3):
        await broker.publish("r", "w", b"stored %d" % n)
    store.gate.clear()
    waiting = [
        asyncio.ensure_future(broker.publish("r", "w", b"on its way %d" % n)) for n in range(2)
    ]
    while len(node.texts()) < 5:
        await asyncio.sleep(0)
    reading = asyncio.ensure_future(broker.history("r", 5, 3))
    await asyncio.sleep(0)
    store.gate.set()
    page = await reading
    assert [m.text for m in page.messages] == [b"stored 1", b"stored 2", b"on its way 0"]
    assert page.more
    assert [await w for w in waiting] == [4, 5]
    await broker.stop()


# chat.history on the wire (PROTOCOL.md section 6); test_chat_on_redis runs these again


def history_frames(peer: ChatPeer, **fields: Any) -> tuple[dict[str, Any], list[Frame]]:
    reply = peer.call("chat.history", **fields)
    return reply, peer.partial


def test_history_op_on_the_wire(srv: RunningServer) -> None:
    with Client.connect(srv.address) as c:
        c.join("lobby", "writer")
        for n in range(1, 11):
            assert c.say("lobby", f"m{n}") == n
    peer = ChatPeer(srv.port)  # anonymous, in no room: reading is what a join gives anyway
    reply, frames = history_frames(peer, room="lobby", before=8, limit=3)
    assert reply == {"op": "chat.history", "re": 1, "room": "lobby", "more": True}
    assert [(f.header["seq"], f.body) for f in frames] == [(5, b"m5"), (6, b"m6"), (7, b"m7")]
    for frame in frames:
        assert frame.header["history"] is True and frame.header["re"] == 1
        assert frame.header["room"] == "lobby" and frame.header["from"] == "writer"
    reply, frames = history_frames(peer, room="lobby", before=3, limit=3)
    assert [f.body for f in frames] == [b"m1", b"m2"] and reply["more"] is False
    reply, frames = history_frames(peer, room="lobby", limit=2)  # no before: the latest
    assert [f.body for f in frames] == [b"m9", b"m10"] and reply["more"] is True
    reply, frames = history_frames(peer, room="lobby", before=1, limit=5)
    assert frames == [] and reply["more"] is False
    reply, frames = history_frames(peer, room="empty.room", limit=5)
    assert (frames, reply["room"], reply["more"]) == ([], "empty.room", False)
    assert peer.pushes == []  # reading joins nothing: no events, no live messages
    assert peer.call("chat.who", room="lobby")["code"] == "chat.not_joined"


def test_history_op_errors(srv: RunningServer) -> None:
    peer = ChatPeer(srv.port)
    for fields, code, word in [
        ({"room": "no room", "limit": 5}, "chat.bad_name", ""),
        ({"room": "x" * 65, "limit": 5}, "chat.bad_name", ""),
        ({"limit": 5}, "bad.request", "room"),
        ({"room": "lobby"}, "bad.request", "limit"),
        ({"room": "lobby", "limit": 0}, "bad.request", "limit"),
        ({"room": "lobby", "limit": 1001}, "bad.request", "limit"),
        ({"room": "lobby", "limit": "5"}, "bad.request", "limit"),
        ({"room": "lobby", "limit": True}, "bad.request", "limit"),
        ({"room": "lobby", "limit": 5, "before": 0}, "bad.request", "before"),
        ({"room": "lobby", "limit": 5, "before": -3}, "bad.request", "before"),
        ({"room": "lobby", "limit": 5, "before": 1.5}, "bad.request", "before"),
        ({"room": "lobby", "limit": 5, "before": 2**53}, "bad.request", "before"),
    ]:
        reply = peer.call("chat.history", **fields)
        assert reply["code"] == code and word in reply["message"], (fields, reply)
        assert peer.partial == []
    at_limit = peer.call("chat.history", room="lobby", limit=1000, before=2**53 - 1)
    assert at_limit == {"op": "chat.history", "re": peer.rid, "room": "lobby", "more": False}


@contextlib.contextmanager
def lobby_of(tmp_path: Path, messages: int, **settings: Any) -> Iterator[Client]:
    """A client of a server with these settings, after it said m0, m1, ... in lobby."""
    with running_server(tmp_path, **settings) as server, Client.connect(server.address) as c:
        c.join("lobby", "w")
        for n in range(messages):
            c.say("lobby", f"m{n}")
        yield c


def test_history_limit_is_chat_history_max_join(tmp_path: Path) -> None:
    with lobby_of(tmp_path, 7, chat_history_max_join=5) as c:
        assert c.hello.limits["chat_history_max_join"] == 5  # a client learns its bound
        page = c.history("lobby", limit=5)
        assert [m.text for m in page.messages] == [f"m{n}" for n in range(2, 7)]
        assert page.more and page.before == 3
        with pytest.raises(BadRequest, match="limit"):
            c.history("lobby", limit=6)


def test_history_stops_at_chat_history_keep(tmp_path: Path) -> None:
    with lobby_of(tmp_path, 8, chat_history_keep=5) as c:
        page = c.history("lobby", before=7, limit=10)
        assert [m.text for m in page.messages] == ["m3", "m4", "m5"]
        assert not page.more and page.before is None


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_both_clients_page_back_through_the_whole_history(srv: RunningServer, kind: str) -> None:
    with Client.connect(srv.address) as c:
        c.join("lobby", "writer")
        for n in range(25):
            c.say("lobby", f"m{n}")
    reader = connect_either(kind, srv.address)
    try:
        joined = reader.call("join", "lobby", "reader", history=5)
        texts = [m.text for m in joined.history]
        before: int | None = joined.history[0].seq
        while before is not None:
            page = reader.call("history", "lobby", before=before, limit=8)
            assert all(m.history and m.room == "lobby" for m in page.messages)
            texts = [m.text for m in page.messages] + texts
            before = page.before
        assert texts == [f"m{n}" for n in range(25)]
        latest = reader.call("history", "lobby")
        assert [m.seq for m in latest.messages] == list(range(1, 26)) and not latest.more
    finally:
        reader.close()


def test_history_needs_the_chat_grant(tmp_path: Path) -> None:
    with running_server(tmp_path, anonymous_grants="echo,time") as server:
        with Client.connect(server.address) as c:
            with pytest.raises(AuthRequired):
                c.history("lobby")


def test_anonymous_askers_are_rate_limited(tmp_path: Path) -> None:
    settings = {"chat_anon_burst": 2, "chat_anon_per_sec": 0.01}
    with running_server(tmp_path, **settings) as server:
        key = server.add_user("ada", ("chat",))
        with Client.connect(server.address) as anonymous:
            anonymous.history("lobby")
            anonymous.history("lobby")
            with pytest.raises(LimitRate) as refused:
                anonymous.history("lobby")
            assert refused.value.retry_after is not None and refused.value.retry_after > 0
        with Client.connect(server.address, user="ada", key=key) as ada:
            for _ in range(5):
                assert ada.history("lobby").messages == []
