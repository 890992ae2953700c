"""History totals over every room in Redis (``redis_totals``): exact accounting, rooms
forgotten by ``chat_room_idle`` leaving the index, and the trimmer moving to another
server when its holder is killed."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from sockhub import AsyncClient
from sockhub.services.chat.redis_broker import RedisBroker
from sockhub.services.chat.redis_format import HISTORY, Keys, stored_messages
from sockhub.services.chat.redis_totals import Totals

from .files_support import ServerProcess
from .redis_cluster_support import ask
from .redis_support import RedisServer
from .test_chat_brokers import KEEP, Backend, Node, cost, member, spanning

__all__ = ["spanning"]  # the fixture, shared with the broker contract

LEASE_KEY, TOTALS, _, ROOMS = HISTORY


async def settled(check: Callable[[], Awaitable[bool] | bool]) -> None:
    """Poll ``check`` until it holds: the trimmer and the index writes run in the
    background."""
    deadline = time.monotonic() + 20
    while True:
        held = check()
        if await held if inspect.isawaitable(held) else held:
            return
        assert time.monotonic() < deadline, "the history never settled"
        await asyncio.sleep(0.05)


async def stored(broker: RedisBroker, rooms: set[str]) -> dict[str, tuple[int, int]]:
    """What each room's stream holds, all of it: messages and bytes."""
    held = {}
    for room in rooms:
        found = stored_messages(room, await broker.redis.xrange(Keys(room).log))
        if found:
            held[room] = (len(found), sum(cost(room, m.sender, m.text) for m in found))
    return held


async def index(broker: RedisBroker) -> tuple[dict[str, tuple[int, int]], tuple[int, int]]:
    """The index: each room's kept messages and bytes, and the totals."""
    rooms = {
        key.decode(): tuple(int(v) for v in value.split()[3:])
        for key, value in (await broker.redis.hgetall(ROOMS)).items()
    }
    totals = await broker.redis.hgetall(TOTALS)
    return rooms, (int(totals.get(b"n", 0)), int(totals.get(b"b", 0)))  # type: ignore[return-value]


async def test_every_room_is_accounted_exactly(spanning: Backend) -> None:
    """Two nodes publish to many rooms, in batches and one by one; the per-room bound
    and the totals both trim. Settled, the index says exactly what every stream holds,
    the totals are its sums, and they are within both limits."""
    spanning.totals = {"max_messages": 300, "max_bytes": 20_000}
    (a, _), (b, _) = await spanning.node(), await spanning.node()
    assert isinstance(a, RedisBroker) and isinstance(b, RedisBroker)
    rooms = set()
    for n in range(0, 600, 20):
        says = []
        for i in range(n, n + 20):
            room = f"room{i % 37}" if i < 300 else f"busy{i % 4}"
            rooms.add(room)
            says.append((a if i % 3 else b).publish(room, "sé" * (i % 4), b"y" * (i * 7 % 90)))
        await asyncio.gather(*says)

    async def exact() -> bool:
        held, (rows, totals) = await stored(a, rooms), await index(b)
        sums = (sum(n for n, _ in held.values()), sum(c for _, c in held.values()))
        return held == rows and totals == sums and sums[0] <= 300 and sums[1] <= 20_000

    await settled(exact)
    # the newest (and busiest) rooms keep exactly their own bound, not a node more
    assert [await a.redis.xlen(Keys(f"busy{i}").log) for i in range(4)] == [KEEP] * 4


async def test_over_the_limits_by_what_was_published_since_the_last_run(
    spanning: Backend,
) -> None:
    """The overshoot bound (docs/limits.md): between two trimmer runs the totals grow
    by what is published, and each run ends within both limits, the oldest gone. Here
    the trimmer runs when the test says (it holds the lease as ``tester``)."""
    spanning.totals = {"max_messages": 40, "max_bytes": 4000}
    broker, _ = await spanning.node()
    assert isinstance(broker, RedisBroker)
    await broker.redis.set(LEASE_KEY, "tester")  # the node's own trimmer stays idle
    trimmer = Totals(
        broker._script,
        broker._deadline,
        lambda: "tester",
        max_messages=40,
        max_bytes=4000,
        lease=60,
    )
    sent: list[tuple[str, int, int]] = []
    for burst in range(5):
        before = (await index(broker))[1]
        for n in range(30):
            room, text = f"r{n % 7}", b"z" * (burst * 30 + n)
            sent.append((room, await broker.publish(room, "ci", text), cost(room, "ci", text)))
        await broker.totals.flush()
        grown = sum(c for *_, c in sent[-30:])
        assert (await index(broker))[1] == (before[0] + 30, before[1] + grown)
        await trimmer.tick()
        rooms, (n, b) = await index(broker)
        assert n <= 40 and b <= 4000
        held = await stored(broker, {r for r, *_ in sent})
        assert held == rooms
        newest = sent[-n:]
        assert sum(c for *_, c in newest) == b
        assert {r: len([s for s in newest if s[0] == r]) for r, *_ in newest} == {
            r: k for r, (k, _) in held.items()
        }


async def test_a_forgotten_room_leaves_the_index(tmp_path: Path) -> None:
    """A room forgotten by ``chat_room_idle`` is dropped from the index by the
    trimmer's sweep, within the limits too: it no longer counts against the totals."""
    redis = RedisServer(tmp_path / "redis").start()
    broker = RedisBroker(redis.url, KEEP, idle=0.3, max_messages=30)
    await broker.start(Node())
    try:
        for n in range(10):
            await broker.publish("fleeting", "ci", b"%d" % n)  # nobody in: expires
        keys = Keys("fleeting")
        await settled(lambda: redis.command("EXISTS", keys.log, keys.seq) == b":0\r\n")
        await settled(lambda: _dropped(broker, "fleeting"))
        assert (await index(broker))[1] == (0, 0)
        await broker.join("kept", member(1), "ada", since=None, count=0)
        sent = [await broker.publish("kept", "ada", b"%d" % n) for n in range(40)]
        await broker.totals.flush()  # the index has all 40: now the trimmer cuts
        await settled(lambda: _within(broker, 30))
        history = await broker.history("kept", None, KEEP)
        assert [m.seq for m in history.messages] == sent[-30:]
    finally:
        await broker.stop()
        redis.stop()


async def test_a_room_made_again_replaces_its_forgotten_self(tmp_path: Path) -> None:
    """A room forgotten and said to again by a node that never saw it numbers from 1
    again: the index takes the new room's account, not the old one's (a later seq)."""
    redis = RedisServer(tmp_path / "redis").start()
    first = RedisBroker(redis.url, KEEP, idle=0.3)
    await first.start(Node())
    try:
        assert [await first.publish("again", "ci", b"%d" % n) for n in range(9)][-1] == 9
        keys = Keys("again")
        await settled(lambda: redis.command("EXISTS", keys.log, keys.seq) == b":0\r\n")
        assert (await index(first))[0]["again"] == (9, 9 * cost("again", "ci", b"0"))
        fresh = RedisBroker(redis.url, KEEP, idle=0.3)
        await fresh.start(Node())
        try:
            assert await fresh.publish("again", "ci", b"new") == 1
            await fresh.totals.flush()
            rows, totals = await index(fresh)
            assert rows["again"] == (1, cost("again", "ci", b"new")) == totals
        finally:
            await fresh.stop()
    finally:
        await first.stop()
        redis.stop()


async def _dropped(broker: RedisBroker, room: str) -> bool:
    return room not in (await index(broker))[0]


async def _within(broker: RedisBroker, most: int) -> bool:
    return (await index(broker))[1][0] <= most


def holder(redis: RedisServer) -> Any:
    return ask(redis, "GET", LEASE_KEY)


async def test_the_trimmer_moves_when_its_server_is_killed(tmp_path: Path) -> None:
    """The server holding the trimmer's lease is killed (-9): another takes the lease
    over and trims the totals back within the limit."""
    redis = RedisServer(tmp_path / "redis").start()
    args = ["--broker", f"{redis.url}?lease=1", "--limit", "chat_history_max_messages=50"]
    args += ["--limit", "chat_anon_burst=100000", "--limit", "chat_anon_per_ip_burst=100000"]
    servers = []
    try:
        for name in ("first", "second"):
            (tmp_path / name).mkdir()
            servers.append(ServerProcess(tmp_path / name / "data", *args))
            if name == "first":  # alone, it takes the lease
                await settled(lambda: holder(redis) is not None)
                first = holder(redis)
        servers[0].kill()
        async with await AsyncClient.connect(servers[1].address) as client:
            for n in range(120):
                await client.say(f"r{n % 3}", f"m{n}", nick="ci")
            rooms = [Keys(f"r{i}").log for i in range(3)]

            async def trimmed() -> bool:
                held = sum(ask(redis, "XLEN", key) for key in rooms)
                return holder(redis) not in (None, first) and held == 50

            await settled(trimmed)
            kept = [(await client.history(f"r{i}")).messages for i in range(3)]
            texts = sorted(int(m.text[1:]) for page in kept for m in page)
            assert texts == list(range(70, 120))
    finally:
        for server in servers:
            server.__exit__()
        redis.stop()
