"""The broker contract (services/chat/broker.py), run against every broker.

The same tests run against the in-process ``MemoryBroker`` and the ``RedisBroker`` on
a private redis-server; the ones about several nodes only against brokers that span
processes. A node here is the recorder ``Node``: what a server process would fan out.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Sequence
from pathlib import Path

import pytest

from sockhub.protocol.errors import BackendUnavailable, ChatNickTaken, ChatNotJoined
from sockhub.services.chat.broker import (
    ChatBroker,
    ChatNode,
    Direct,
    Event,
    History,
    Member,
    Message,
)
from sockhub.services.chat.history import HistoryStore
from sockhub.services.chat.memory import MemoryBroker
from sockhub.services.chat.redis_broker import RedisBroker
from sockhub.services.chat.redis_format import Keys

from .redis_cluster_support import PrivateCluster
from .redis_support import RedisServer

KEEP = 50


class Node(ChatNode):
    """Records what a broker hands over, in order."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, object]] = []
        self.messages: list[Message] = []
        self.events: list[Event] = []

    def deliver(self, batch: Sequence[Message]) -> None:
        self.seen += [("msg", (m.room, m.seq, m.text)) for m in batch]
        self.messages += batch

    def event(self, event: Event) -> None:
        self.seen.append(("event", (event.room, event.kind, event.nick)))
        self.events.append(event)

    def direct(self, dm: Direct, conns: Collection[str]) -> None:
        self.seen.append(("dm", (dm.to, dm.text, sorted(conns))))

    def texts(self, room: str = "r") -> list[bytes]:
        return [m.text for m in self.messages if m.room == room]


async def until(condition: Callable[[], bool], limit: float = 10.0) -> None:
    """Let the loop run until ``condition`` holds (deliveries cross Redis)."""
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the condition never held")
        await asyncio.sleep(0.002)


def member(n: int, user: str | None = None) -> Member:
    return Member(f"m{n}", f"c{n}", user)


class Backend:
    """Makes started brokers (nodes) of one kind sharing one backend: the in-process
    broker, a private redis-server, or a private Redis Cluster (emptied for each test)."""

    def __init__(self, kind: str, tmp: Path, cluster: PrivateCluster | None = None) -> None:
        self.kind = kind
        self.tmp = tmp
        self.redis: RedisServer | None = None
        self.cluster = cluster
        self.brokers: list[ChatBroker] = []
        self.totals: dict[str, int] = {}
        """History totals for the nodes made next (``max_messages``, ``max_bytes``)."""

    async def node(self) -> tuple[ChatBroker, Node]:
        broker: ChatBroker
        if self.kind == "memory":
            broker = MemoryBroker(HistoryStore(self.tmp / "h.sqlite3", KEEP, **self.totals))
        elif self.cluster is not None:
            broker = RedisBroker(self.cluster.url, KEEP, **self.totals)
        else:
            if self.redis is None:
                self.redis = RedisServer(self.tmp / "redis").start()
            broker = RedisBroker(self.redis.url, KEEP, **self.totals)
        node = Node()
        await broker.start(node)
        self.brokers.append(broker)
        return broker, node

    async def close(self) -> None:
        for broker in self.brokers:
            await broker.stop()
        if self.redis is not None:
            self.redis.stop()


@contextlib.asynccontextmanager
async def _backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    cluster = None
    if request.param == "cluster":
        cluster = request.getfixturevalue("private_cluster")
        cluster.flush()
    b = Backend(request.param, tmp_path, cluster)
    try:
        yield b
    finally:
        await b.close()


@pytest.fixture(params=["memory", "redis", "cluster"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    async with _backend(request, tmp_path) as b:
        yield b


@pytest.fixture(params=["redis", "cluster"])
async def spanning(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    """A broker that spans processes (Redis, Redis Cluster): several nodes, one room."""
    async with _backend(request, tmp_path) as b:
        yield b


def increasing(seqs: list[int]) -> bool:
    return all(a < b for a, b in itertools.pairwise(seqs))


async def test_messages_and_events_keep_one_order(backend: Backend) -> None:
    broker, node = await backend.node()
    await broker.join("r", member(1), "one", since=None, count=0)
    acks = [broker.publish("r", "one", b"%d" % n) for n in range(3)]
    await broker.join("r", member(2), "two", since=None, count=0)
    acks.append(broker.publish("r", "two", b"last"))
    seqs = [await a for a in acks]
    assert increasing(seqs)
    await until(lambda: len(node.messages) == 4)
    assert [m.seq for m in node.messages] == seqs
    kinds = [kind for kind, _ in node.seen]
    assert kinds == ["event", "msg", "msg", "msg", "event", "msg"]
    with pytest.raises(ChatNickTaken):
        await broker.join("r", member(3), "ONE", since=None, count=0)
    assert await broker.members("r") == ["one", "two"]


async def test_join_history_since_and_count(backend: Backend) -> None:
    broker, _node = await backend.node()
    await broker.join("r", member(1), "w", since=None, count=0)
    seqs = [await broker.publish("r", "w", b"m%d" % n) for n in range(10)]
    joined = await broker.join("r", member(2), "late", since=None, count=3)
    assert [m.text for m in joined.history] == [b"m7", b"m8", b"m9"]
    assert joined.seq >= seqs[-1]
    again = await broker.join("r", member(3), "again", since=seqs[4], count=0)
    assert [m.seq for m in again.history] == seqs[5:]
    assert all(m.sender == "w" and m.room == "r" for m in again.history)
    nothing = await broker.join("r", member(4), "none", since=None, count=0)
    assert nothing.history == [] and nothing.members == ["again", "late", "none", "w"]


async def test_history_is_bounded_by_keep(backend: Backend) -> None:
    broker, _ = await backend.node()
    await broker.join("r", member(1), "w", since=None, count=0)
    acks = [broker.publish("r", "w", b"m%d" % n) for n in range(KEEP + 20)]
    await asyncio.gather(*acks)
    joined = await broker.join("r", member(2), "late", since=0, count=0)
    assert [m.text for m in joined.history] == [b"m%d" % n for n in range(20, KEEP + 20)]


async def test_history_pages_back_to_the_oldest_kept(backend: Backend) -> None:
    """Scroll-back: each page the ``limit`` latest below ``before``, oldest first; ``more``
    says whether older ones are kept, false too when exactly ``limit`` were left."""
    broker, _node = await backend.node()
    await broker.join("r", member(1), "w", since=None, count=0)
    seqs = [await broker.publish("r", "w", b"m%d" % n) for n in range(30)]
    latest = await broker.history("r", None, 10)
    assert [m.seq for m in latest.messages] == seqs[20:] and latest.more
    assert all(m.sender == "w" and m.room == "r" for m in latest.messages)
    pages, before = [latest.messages], latest.messages[0].seq
    while True:
        page = await broker.history("r", before, 7)
        pages.insert(0, page.messages)
        if not page.more:
            break
        before = page.messages[0].seq
    assert [m.text for p in pages for m in p] == [b"m%d" % n for n in range(30)]
    exact = await broker.history("r", seqs[10], 10)
    assert [m.seq for m in exact.messages] == seqs[:10] and not exact.more
    assert await broker.history("r", seqs[0], 5) == History([], False)
    assert (await broker.history("r", seqs[0] + 1, 5)).messages[0].seq == seqs[0]
    assert (await broker.history("r", seqs[-1] + 100, 1)).messages[0].seq == seqs[-1]
    assert await broker.history("nowhere", None, 50) == History([], False)


def cost(room: str, sender: str, text: bytes) -> int:
    """What a message counts against ``max_bytes`` (docs/limits.md)."""
    return len(text) + len(sender.encode()) + len(room.encode()) + 32


async def kept_once_trimmed(
    broker: ChatBroker, rooms: Collection[str], done: Callable[[list[Message]], bool]
) -> list[Message]:
    """Every room's kept history, read again until ``done`` holds of it (the Redis
    broker's trimmer runs in the background)."""
    deadline = time.monotonic() + 20
    while True:
        kept = [m for room in rooms for m in (await broker.history(room, None, KEEP)).messages]
        if done(kept):
            return kept
        assert time.monotonic() < deadline, f"{len(kept)} messages kept"
        await asyncio.sleep(0.05)


async def test_history_totals_keep_the_newest_messages_of_all_rooms(backend: Backend) -> None:
    """Over ``max_messages`` in all rooms together, the oldest stored go first,
    whatever their room: what stays is the newest ``max_messages``."""
    backend.totals = {"max_messages": 40}
    broker, _ = await backend.node()
    sent = []
    for n in range(130):
        room = f"r{n % 9}"
        sent.append((room, await broker.publish(room, "ci", b"m%d" % n)))
    kept = await kept_once_trimmed(broker, {r for r, _ in sent}, lambda k: len(k) <= 40)
    assert {(m.room, m.seq) for m in kept} == set(sent[-40:])


async def test_history_totals_keep_the_newest_bytes_of_all_rooms(backend: Backend) -> None:
    """Over ``max_bytes`` (text + sender + room + 32 a message), the oldest go first."""
    limit = 3000
    backend.totals = {"max_bytes": limit}
    broker, _ = await backend.node()
    sent = []
    for n in range(120):
        room, sender, text = f"room{n % 5}", "sé" * (n % 3 + 1), b"x" * (n * 37 % 120)
        sent.append((room, await broker.publish(room, sender, text), cost(room, sender, text)))
    assert sum(c for *_, c in sent) > 2 * limit

    def within(kept: list[Message]) -> bool:
        return sum(cost(m.room, m.sender, m.text) for m in kept) <= limit

    kept = await kept_once_trimmed(broker, {r for r, *_ in sent}, within)
    assert kept and {(m.room, m.seq) for m in kept} == {(r, s) for r, s, _ in sent[-len(kept) :]}


async def test_history_needs_no_member_on_the_node(backend: Backend) -> None:
    broker, _node = await backend.node()
    seqs = [await broker.publish("quiet", "ci", b"%d" % n) for n in range(3)]
    page = await broker.history("quiet", None, 2)
    assert [(m.seq, m.text) for m in page.messages] == [(seqs[1], b"1"), (seqs[2], b"2")]
    assert page.more
    assert await broker.rooms() == []


async def test_leave_rename_rooms(backend: Backend) -> None:
    broker, node = await backend.node()
    await broker.join("r", member(1), "ada", since=None, count=0)
    await broker.join("r", member(2), "bob", since=None, count=0)
    await broker.join("s", member(1), "ada", since=None, count=0)
    assert await broker.rooms() == [("r", 2), ("s", 1)]
    with pytest.raises(ChatNickTaken):
        await broker.rename("r", member(2), "ADA")
    assert await broker.rename("r", member(2), "robert") == "bob"
    assert await broker.rename("r", member(2), "robert") == "robert"  # no change, no event
    await broker.leave("r", member(2))
    await broker.leave("r", member(2))  # a no-op the second time
    await until(lambda: len(node.events) == 5)
    assert [(e.kind, e.nick, e.old) for e in node.events if e.room == "r"] == [
        ("join", "ada", None),
        ("join", "bob", None),
        ("nick", "robert", "bob"),
        ("leave", "robert", None),
    ]
    assert await broker.members("r") == ["ada"]
    await broker.leave("s", member(1))
    assert await broker.rooms() == [("r", 1)]
    with pytest.raises(ChatNotJoined):
        await broker.rename("s", member(1), "x")


async def test_direct_messages_reach_every_connection_holding_the_name(
    backend: Backend,
) -> None:
    broker, node = await backend.node()
    await broker.join("r", member(1, user="ada"), "ada", since=None, count=0)
    await broker.join("s", Member("m9", "c1", "ada"), "queen", since=None, count=0)
    await broker.join("r", member(2), "bob", since=None, count=0)
    assert await broker.direct(Direct("ADA", "bob", 1.0, b"hi"), "ada") == 1
    assert await broker.direct(Direct("queen", "bob", 1.0, b"yo"), "queen") == 1
    assert await broker.direct(Direct("nobody", "bob", 1.0, b"?"), "nobody") == 0
    await until(lambda: sum(kind == "dm" for kind, _ in node.seen) == 2)
    assert [seen for kind, seen in node.seen if kind == "dm"] == [
        ("ADA", b"hi", ["c1"]),
        ("queen", b"yo", ["c1"]),
    ]


async def test_publish_from_outside_the_room(backend: Backend) -> None:
    """``chat.say`` with a nick: a node without a member in the room publishes to it,
    stored and numbered like any message, in call order."""
    broker, _node = await backend.node()
    assert await broker.publish("empty", "ci", b"nobody hears") == 1
    seqs = await asyncio.gather(*(broker.publish("empty", "ci", b"%d" % n) for n in range(5)))
    assert seqs == [2, 3, 4, 5, 6]
    joined = await broker.join("empty", member(1), "late", since=0, count=0)
    assert [m.text for m in joined.history] == [b"nobody hears", *(b"%d" % n for n in range(5))]
    assert joined.members == ["late"]


async def test_unannounced_publish_is_refused_while_a_member_holds_the_nick(
    backend: Backend,
) -> None:
    """``chat.say`` with a nick: refused (``ChatNickTaken``, nothing stored) while a
    member holds a nick with that key."""
    broker, _node = await backend.node()
    assert await broker.publish("r", "ada", b"before", unannounced=True) == 1
    await broker.join("r", member(1), "ada", since=None, count=0)
    with pytest.raises(ChatNickTaken):
        await broker.publish("r", "ADA", b"refused", unannounced=True)
    assert await broker.publish("r", "ci", b"free nick", unannounced=True) == 2
    history = (await broker.join("r", member(2), "cy", since=0, count=0)).history
    assert [(m.sender, m.text) for m in history] == [("ada", b"before"), ("ci", b"free nick")]


@pytest.mark.parametrize("lane", [False, True], ids=["no-member-here", "member-here"])
async def test_unannounced_says_racing_a_join_of_the_nick(spanning: Backend, lane: bool) -> None:
    """One node says as ``ada`` from outside, without pause, while another node joins
    ``ada``: the check is part of the store, so every accepted message comes before the
    join and every one after it is refused, in the order the says were made."""
    (a, _), (b, _) = await spanning.node(), await spanning.node()
    if lane:  # b has a member in the room: its says take the room's lane
        await b.join("r", member(1), "bob", since=None, count=0)
    says: list[asyncio.Future[int]] = []

    async def say_until_refused() -> None:
        while len(says) < 5000 and not any(s.done() and s.exception() for s in says):
            says.extend(
                asyncio.ensure_future(b.publish("r", "ada", b"%d" % n, unannounced=True))
                for n in range(len(says), len(says) + 20)
            )
            await asyncio.sleep(0)

    says.append(asyncio.ensure_future(b.publish("r", "ada", b"first", unannounced=True)))
    await says[0]
    saying = asyncio.ensure_future(say_until_refused())
    joined = await a.join("r", member(2), "ada", since=None, count=0)
    await saying
    outcomes = await asyncio.gather(*says, return_exceptions=True)
    accepted = [o for o in outcomes if isinstance(o, int)]
    refused = [o for o in outcomes if not isinstance(o, int)]
    assert accepted and refused
    assert all(isinstance(o, ChatNickTaken) for o in refused)
    assert outcomes[: len(accepted)] == accepted  # refused from the join on, never again
    assert max(accepted) <= joined.seq  # all before the join event
    history = (await a.join("r", member(3), "cy", since=0, count=0)).history
    assert [m.seq for m in history if m.sender == "ada"] == accepted[-KEEP:]


async def test_publish_from_a_node_without_members_reaches_the_others(
    spanning: Backend,
) -> None:
    backend = spanning
    (a, node_a), (b, node_b) = await backend.node(), await backend.node()
    await b.join("r", member(1), "bob", since=None, count=0)
    acks = [a.publish("r", "ci", b"%d" % n) for n in range(10)]
    seqs = await asyncio.gather(*acks)
    assert increasing(seqs)
    await until(lambda: len(node_b.messages) == 10)
    assert [(m.seq, m.sender, m.text) for m in node_b.messages] == [
        (seq, "ci", b"%d" % n) for n, seq in enumerate(seqs)
    ]
    assert node_a.messages == []
    assert await a.members("r") == ["bob"]  # what the nick check of chat.say reads


async def test_two_nodes_see_one_order_and_one_history(spanning: Backend) -> None:
    backend = spanning
    (a, node_a), (b, node_b) = await backend.node(), await backend.node()
    await a.join("r", member(1), "ada", since=None, count=0)
    await b.join("r", member(2), "bob", since=None, count=0)
    acks: list[Awaitable[int]] = []
    for n in range(40):
        acks.append(a.publish("r", "ada", b"a%d" % n))
        acks.append(b.publish("r", "bob", b"b%d" % n))
        if n % 7 == 0:
            await asyncio.sleep(0)
    seqs = sorted(await asyncio.gather(*acks))
    assert len(set(seqs)) == 80
    await until(lambda: len(node_a.messages) == len(node_b.messages) == 80)
    assert node_a.seen[-80:] == node_b.seen[-80:]
    assert [m.seq for m in node_a.messages] == seqs
    history = (await b.join("r", member(3), "cy", since=0, count=0)).history
    assert [m.seq for m in history] == seqs[-KEEP:]
    assert await a.history("r", seqs[-5], 10) == await b.history("r", seqs[-5], 10)
    assert await a.members("r") == ["ada", "bob", "cy"]
    assert await b.rooms() == [("r", 3)]
    with pytest.raises(ChatNickTaken):
        await a.join("r", member(4), "Bob", since=None, count=0)
    assert await a.direct(Direct("bob", "ada", 1.0, b"psst"), "bob") == 1
    await until(lambda: ("dm", ("bob", b"psst", ["c2"])) in node_b.seen)


async def stalled_does_nothing(broker: ChatBroker, pid: int) -> None:
    """The redis-server ``pid`` serving room ``r`` stalls: requests time out as
    ``backend.unavailable``, and once it runs again they turn out to have done nothing."""
    await broker.join("r", member(1), "ada", since=None, count=0)
    before = await broker.publish("r", "ada", b"before")
    os.kill(pid, signal.SIGSTOP)  # Redis stalls: requests time out
    try:
        with pytest.raises(BackendUnavailable):
            await broker.publish("r", "ada", b"stalled")
        with pytest.raises(BackendUnavailable):
            await broker.join("r", member(2), "bob", since=None, count=0)
    finally:
        os.kill(pid, signal.SIGCONT)
    # the stalled requests reached Redis after all, and did nothing there
    after = await broker.publish("r", "ada", b"after")
    assert after > before
    joined = await broker.join("r", member(3), "cy", since=0, count=0)
    assert [m.text for m in joined.history] == [b"before", b"after"]
    assert joined.members == ["ada", "cy"]


async def test_redis_stalled_or_down_is_backend_unavailable_and_nothing_done(
    tmp_path: Path,
) -> None:
    redis = RedisServer(tmp_path / "redis").start()
    broker, node = RedisBroker(redis.url, KEEP), Node()
    await broker.start(node)
    try:
        assert redis.proc is not None
        await stalled_does_nothing(broker, redis.proc.pid)
        redis.stop()  # Redis is gone
        with pytest.raises(BackendUnavailable):
            await broker.publish("r", "ada", b"gone")
        with pytest.raises(BackendUnavailable):
            await broker.join("s", member(4), "dee", since=None, count=0)
        with pytest.raises(BackendUnavailable):
            await broker.members("r")
        with pytest.raises(BackendUnavailable):
            await broker.history("r", None, 5)
    finally:
        await broker.stop()
        redis.stop()


async def test_redis_forgets_an_empty_room_after_chat_room_idle(tmp_path: Path) -> None:
    """A room with members never expires; once the last one left, or after a message
    said from outside while nobody is in, its counter and stream expire after ``idle``
    (chat_room_idle), and numbering still never goes back."""
    redis = RedisServer(tmp_path / "redis").start()
    broker, node = RedisBroker(redis.url, KEEP, idle=0.3), Node()
    await broker.start(node)
    keys = Keys("r")
    try:
        await broker.join("r", member(1), "ada", since=None, count=0)
        first = await broker.publish("r", "ada", b"kept while ada is in")
        await broker.join("r", member(2), "bob", since=None, count=0)
        await broker.leave("r", member(2))
        assert redis.command("PTTL", keys.log) == b":-1\r\n"  # ada is still in
        assert redis.command("PTTL", keys.seq) == b":-1\r\n"
        await broker.leave("r", member(1))
        assert redis.command("PTTL", keys.log) not in (b":-1\r\n", b":-2\r\n")
        await until(lambda: redis.command("EXISTS", keys.log, keys.seq) == b":0\r\n")
        joined = await broker.join("r", member(3), "cy", since=0, count=0)
        assert joined.history == []
        assert await broker.publish("r", "cy", b"after") > first
        assert redis.command("PTTL", keys.log) == b":-1\r\n"
        # spoken to from outside, nobody ever in: forgotten idle after the last message
        outside = Keys("outside")
        assert await broker.publish("outside", "ci", b"one", unannounced=True) == 1
        assert redis.command("PTTL", outside.log) not in (b":-1\r\n", b":-2\r\n")
        assert redis.command("PTTL", outside.seq) not in (b":-1\r\n", b":-2\r\n")
        await until(lambda: redis.command("EXISTS", outside.log, outside.seq) == b":0\r\n")
        assert await broker.publish("outside", "ci", b"two", unannounced=True) > 1
    finally:
        await broker.stop()
        redis.stop()
