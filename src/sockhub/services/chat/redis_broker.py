"""The Redis broker: rooms, order and history shared by every process and host.

Per room, under keys hash-tagged ``{room}`` (so Redis Cluster keeps a room on one slot):
``seq`` (the counter: the last message's seq and the events since), ``log`` (a Stream
of the kept messages, entry id = ``seq``),
``members`` (member id -> JSON entry naming its nick and node), ``nicks`` (nick key ->
member id) and ``chan`` (the shard channel; plain pub/sub before Redis 7).

In a Redis Cluster each script goes to the master serving its room's slot
(``redis_cluster.Router``) and each channel is listened to there
(``redis_subs.Subscriptions``); with one Redis, everything goes to it.

Everything that changes a room is one Lua script (EVALSHA), so it is atomic: the
messages one loop turn published to a room are numbered, appended and published in
one round trip (``publish.lua``), and joins, leaves and nick changes take their place
(after the latest message) the same way, so every node receives a room's messages and
events in one order, and messages keep consecutive seqs. Each
node puts what pub/sub brings back in ``seq`` order and repairs gaps from the stream
(``redis_order.RoomOrder``). Every script also carries the highest ``seq`` the node has
seen, so a counter Redis lost (restart without persistence, fail-over) never goes back.

A room's scripts go to Redis one at a time, in the order they were asked for (the
room's *lane*, ``redis_lane``). ``ok`` is sent once the script returned, that is once
Redis holds the message; a failing or unreachable Redis is ``backend.unavailable``
within ``TIMEOUT`` and, the script being atomic, nothing half-done.

Presence survives a crashed node through leases (``redis_lease``). Direct messages go
to the nodes named in ``sockhub:{reach:KEY}`` (``redis_directory``, which also keeps each
node's record of the names and rooms it holds). The totals over every room's history
are kept by ``redis_totals``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import hiredis
import redis
from redis.exceptions import RedisError

from ...protocol.errors import BackendUnavailable, ChatNickTaken, ChatNotJoined
from ...protocol.text import escape
from ...server.background import Background
from ...server.limits import Limits
from .broker import (
    BrokerUnreachable,
    ChatBroker,
    ChatNode,
    Direct,
    History,
    Joined,
    Member,
    Message,
)
from .names import nick_key
from .presence import Presence
from .redis_cluster import Client, Router, open_client
from .redis_cork import CorkedPipe
from .redis_directory import Directory
from .redis_format import (
    DM,
    ENTRY,
    LEASE,
    NODE_SCRIPTS,
    NODES,
    PACK,
    ROOM_SCRIPTS,
    Keys,
    array_header,
    costs,
    decode_push,
    lua,
    nicks,
    node_keys,
    parse_url,
    safe_url,
    stored_messages,
)
from .redis_lane import Lane, Op, Say, Stored
from .redis_lease import NodeLease
from .redis_order import Position, RoomOrder
from .redis_subs import Subscriptions
from .redis_totals import Kept, Totals

__all__ = ["LEASE", "TIMEOUT", "RedisBroker", "parse_url", "probe"]

log = logging.getLogger("sockhub.chat")

T = TypeVar("T")

TIMEOUT = 1.0
"""Longest wait for Redis before a request fails with ``backend.unavailable``."""

DEADLINE_MARGIN = 0.2
"""A publish script that starts later than ``TIMEOUT - DEADLINE_MARGIN`` after it was
sent does nothing: its sender is about to hear ``backend.unavailable`` ("nothing was
done"), so it must not be stored and delivered after all (a Redis that stalled)."""


def probe(url: str) -> None:
    """Check that Redis answers at ``url`` (before forking workers); ``BrokerUnreachable``
    saying where and why when it does not."""
    plain, _ = parse_url(url)
    client = redis.Redis.from_url(plain, socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT)
    try:
        client.ping()
    except _FAILURES as exc:
        raise BrokerUnreachable(f"cannot reach Redis at {safe_url(plain)}: {exc}") from exc
    finally:
        client.close()


class _Room:
    """This node's side of one room: its order, its lane, its local members."""

    __slots__ = ("keys", "lane", "local", "order", "subscribed")

    def __init__(self, name: str, order: RoomOrder, stored: Stored) -> None:
        self.keys = Keys(name)
        self.order = order
        self.lane = Lane(name, order, stored, TIMEOUT)
        self.local = 0
        """Members on this node, joined or joining."""
        self.subscribed: asyncio.Future[Any] | None = None


_FAILURES = (RedisError, hiredis.ReplyError, OSError, TimeoutError)
"""What a failing or unreachable Redis raises (ConnectionError is an OSError)."""


@contextlib.contextmanager
def _unavailable() -> Iterator[None]:
    """Redis failing or unreachable, as the client sees it."""
    try:
        yield
    except _FAILURES as exc:
        raise BackendUnavailable(f"the chat broker (Redis) is unavailable: {exc}") from exc


class RedisBroker(ChatBroker):
    """Rooms shared through the Redis at ``url`` (``redis://[:password@]host:port[/db]``),
    or through the Redis Cluster that node belongs to."""

    def __init__(
        self,
        url: str,
        keep: int,
        background: Background | None = None,
        *,
        idle: float | None = None,
        max_messages: int = Limits().chat_history_max_messages,
        max_bytes: int = Limits().chat_history_max_bytes,
    ) -> None:
        self._url, self.lease = parse_url(url)
        self._keep = keep
        self._idle_ms = 0 if idle is None else max(1, int(idle * 1000))
        """chat_room_idle: an empty room's keys expire this long after its last leave
        (0: never)."""
        self._own_background = background is None
        self._background = Background() if background is None else background
        """Where the lease keeper, pub/sub reconnects and gap repairs run: the server's
        (cancelled and awaited at its shutdown), or the broker's own when used alone."""
        self._node: ChatNode | None = None
        self._redis: Client | None = None
        self._scripts: dict[str, tuple[str, str]] = {}
        """name -> (sha1, text)"""
        self._router = Router(self._url, cluster=False, pipe=CorkedPipe)
        """Where the scripts go (the Redis, or the cluster node serving their keys)."""
        self._subs: Subscriptions | None = None
        self._sharded = True
        self._rooms: dict[str, _Room] = {}
        self._high: dict[str, Position] = {}
        """The latest position seen in each room this node left (see ``_floor``)."""
        self._presence = Presence()
        self._entries: dict[str, tuple[str, Member, str]] = {}
        """member id -> (room, member, nick) of this node's members, to put back"""
        self._directory = Directory(
            lambda: self.redis, lambda: self.node_id, self._presence, self._local, TIMEOUT
        )
        self._turn = False
        self._stopping = False
        self._clock_offset = 0
        """Redis's clock minus ours, ms (give or take a round trip): script deadlines."""
        self._lease = NodeLease(
            self.lease,
            idle_ms=self._idle_ms,
            timeout=TIMEOUT,
            script=self._script,
            redis=lambda: self.redis,
            floor=self._floor,
            on_lane=self._on_lane,
            leave_script=self._leave_script,
            entry=self._entry,
            entries=self._entries,
            reach=self._directory.reach,
        )
        self.totals = Totals(
            self._script,
            self._deadline,
            lambda: self.node_id,
            max_messages=max_messages,
            max_bytes=max_bytes,
            lease=self.lease,
        )

    # start and stop ---------------------------------------------------------------------

    @property
    def redis(self) -> Client:
        assert self._redis is not None, "the Redis broker has not started"
        return self._redis

    async def start(self, node: ChatNode) -> None:
        self._node = node
        try:
            self._redis, info = await open_client(self._url, TIMEOUT)
        except _FAILURES as exc:
            raise BrokerUnreachable(f"cannot reach Redis at {safe_url(self._url)}: {exc}") from exc
        cluster = int(info.get("cluster_enabled", 0)) == 1
        self._router = Router(self._url, cluster=cluster, pipe=CorkedPipe)
        self._sharded = int(str(info.get("redis_version", "0")).split(".")[0]) >= 7
        self._directory.sharded = self._sharded
        seconds, micros = await self.redis.time()
        self._clock_offset = seconds * 1000 + micros // 1000 - int(time.time() * 1000)
        publish = "SPUBLISH" if self._sharded else "PUBLISH"
        for name in (*ROOM_SCRIPTS, *NODE_SCRIPTS):
            text = lua(name, publish).replace("__CLUSTER__", "true" if cluster else "false")
            self._scripts[name] = (hashlib.sha1(text.encode()).hexdigest(), text)
        self._subs = self._lease.subs = Subscriptions(
            self._router,
            self._background,
            sharded=self._sharded,
            on_message=self._received,
            on_back=self._caught_up,
        )
        try:
            async with asyncio.timeout(TIMEOUT):
                await self._subs.start([node_keys(self.node_id)[2].encode()])
            await self._script("lease", [NODES], [self.node_id, self._lease.lease_ms, 1])
        except _FAILURES as exc:
            await self._close()
            raise BrokerUnreachable(f"cannot use Redis at {safe_url(self._url)}: {exc}") from exc
        self._background.every(self.lease / 3, self._lease.keep_lease, "chat broker lease")
        self.totals.start(self._background)

    @property
    def node_id(self) -> str:
        """This node's id in Redis (a new one once its lease was lost)."""
        return self._lease.node_id

    async def stop(self) -> None:
        self._stopping = True
        if self._redis is None:
            return
        for room in list(self._rooms.values()):
            if room.lane.runner is not None:
                with contextlib.suppress(Exception):
                    await room.lane.runner
        if self._own_background:
            await self._background.close()
        await self._directory.idle()
        await self.totals.flush()
        with contextlib.suppress(*_FAILURES):
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.zrem(NODES, self.node_id)
                self._directory.withdraw(pipe)
                await pipe.execute()
        for room in self._rooms.values():
            room.order.close()
        await self._close()

    async def _close(self) -> None:
        if self._subs is not None:
            self._subs.close()
        self._router.close()
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None

    # pub/sub ----------------------------------------------------------------------------

    def _caught_up(self, channels: list[bytes]) -> None:
        """Pub/sub is back on ``channels`` (after a drop, a fail-over, a slot moved):
        read back what was published to those rooms meanwhile."""
        back = set(channels)
        rooms = [(n, room) for n, room in self._rooms.items() if room.keys.chan.encode() in back]
        for _, room in rooms:
            room.subscribed = asyncio.get_running_loop().create_future()
            room.subscribed.set_result(None)
        if rooms:
            self._background.spawn(self._read_counters(rooms), "chat broker catch-up")

    async def _read_counters(self, rooms: list[tuple[str, _Room]]) -> None:
        """Each room's latest seq in Redis: the order repairs up to it from the stream."""
        while not self._stopping:
            try:
                async with self.redis.pipeline(transaction=False) as pipe:
                    for _, room in rooms:
                        pipe.hget(room.keys.seq, "s")
                    counters = await pipe.execute()
                break
            except _FAILURES:
                await asyncio.sleep(TIMEOUT)
        else:
            return
        for (name, room), counter in zip(rooms, counters, strict=True):
            if counter is not None and self._rooms.get(name) is room:
                room.order.known(int(counter))

    def _received(self, channel: bytes, data: bytes) -> None:
        """One pub/sub message: a room's batch or event, or a direct message."""
        if channel.endswith(b":dm"):
            self._direct_in(data)
            return
        name = channel[channel.index(b"{") + 1 : channel.rindex(b"}")].decode()
        room = self._rooms.get(name)
        if room is None:
            return
        room.order.arrive(decode_push(name, data))

    def _direct_in(self, data: bytes) -> None:
        to, sender, ts, text, key = DM.decode(data)
        conns = self._presence.reach(key)
        if conns and self._node is not None:
            self._node.direct(Direct(to, sender, ts, text), conns)

    # rooms and lanes --------------------------------------------------------------------

    def _room(self, name: str) -> _Room:
        """This node's state of a room, subscribing to it on first use."""
        room = self._rooms.get(name)
        if room is None:
            order = RoomOrder(
                self._node_or_fail(),
                lambda after, upto: self._read(name, after, upto),
                self._background,
            )
            order.high = self._high.get(name, (0, 0))
            room = self._rooms[name] = _Room(name, order, functools.partial(self._stored, name))
            assert self._subs is not None, "the Redis broker has not started"
            room.subscribed = self._subs.add(room.keys.chan.encode())
        return room

    def _node_or_fail(self) -> ChatNode:
        assert self._node is not None, "the Redis broker has not started"
        return self._node

    def _release_room(self, name: str) -> None:
        """No member of the room is left on this node: stop listening to it."""
        room = self._rooms.get(name)
        if room is None or room.local > 0 or room.lane.jobs or room.lane.runner is not None:
            return
        del self._rooms[name]
        self._high[name] = max(self._high.get(name, (0, 0)), room.order.high)
        room.order.close()
        if self._subs is not None:
            self._subs.remove(room.keys.chan.encode())

    def _floor(self, name: str) -> str:
        """The latest position this node saw in the room, ``S:K``: every script takes it
        into account, so a counter Redis lost never goes back."""
        room = self._rooms.get(name)
        high = self._high.get(name, (0, 0))
        if room is not None:
            high = max(high, room.order.high)
        return f"{high[0]}:{high[1]}"

    async def _read(self, name: str, after: int, upto: int) -> list[Message]:
        """Kept messages in (after, upto]."""
        raw = await self.redis.xrange(Keys(name).log, f"({after}-0", f"{upto}")
        return stored_messages(name, raw)

    def _queue(self, name: str, job: Say | Op) -> None:
        self._rooms[name].lane.jobs.append(job)
        if not self._turn:
            self._turn = True
            asyncio.get_running_loop().call_soon(self._end_turn)

    def _end_turn(self) -> None:
        """Start the lane of every room that got work this turn."""
        self._turn = False
        for name, room in self._rooms.items():
            if room.lane.jobs and room.lane.runner is None:
                room.lane.runner = asyncio.get_running_loop().create_task(
                    self._run_lane(name, room)
                )

    async def _run_lane(self, name: str, room: _Room) -> None:
        try:
            await room.lane.run()
        finally:
            room.lane.runner = None
            self._release_room(name)

    def _on_lane(self, name: str, run: Callable[[], Awaitable[T]]) -> asyncio.Future[T]:
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue(name, Op(run, future))
        return future

    async def _script(self, name: str, keys: list[str], args: list[Any]) -> Any:
        """Run a script (EVALSHA; EVAL when Redis lost its script cache), pipelined, on
        the node that serves its keys."""
        sha, text = self._scripts[name]
        async with asyncio.timeout(TIMEOUT):
            try:
                return await self._router.call(keys[0], "EVALSHA", sha, len(keys), *keys, *args)
            except hiredis.ReplyError as exc:
                if not str(exc).startswith("NOSCRIPT"):
                    raise
            return await self._router.call(keys[0], "EVAL", text, len(keys), *keys, *args)

    # messages ---------------------------------------------------------------------------

    def publish(
        self, room: str, sender: str, text: bytes, *, unannounced: bool = False
    ) -> Awaitable[int]:
        check = nick_key(sender) if unannounced else ""
        if room not in self._rooms:
            # chat.say with a nick from outside, and no member of the room on this node:
            # no lane, and ok once Redis stored it (no member here waits to see it
            # first); a task, so the scripts go out in call order
            return asyncio.ensure_future(self._stored_outside(room, sender, text, check))
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._queue(room, Say(sender, text, future, check))
        return future

    async def _stored(self, name: str, says: list[tuple[str, bytes]], check: str = "") -> int:
        """Run the publish script; the first message's ``seq`` (``BackendUnavailable``
        when Redis failed or answered too late, ``ChatNickTaken`` when a member holds
        the nick key ``check``: then nothing was stored)."""
        # ts to the microsecond: the trimmer orders rooms' oldest messages by it
        args: list[Any] = [self._floor(name), self._keep, f"{time.time():.6f}", self._deadline()]
        args += [self._idle_ms, check, costs(name, says), array_header(len(says))]
        args += [PACK.encode(say) for say in says]
        with _unavailable():
            result = await self._script("publish", Keys(name).all, args)
        first = int(result[0])
        if first == -2:
            raise ChatNickTaken(f"the nick {says[0][0]} is in use in {name}")
        if first < 0:
            raise BackendUnavailable("the chat broker (Redis) answered too late; not sent")
        n, b, head, made = int(result[1]), int(result[2]), result[3].decode(), int(result[4])
        self.totals.kept(name, Kept(made, first + len(says) - 1, 0, n, b, head))
        return first

    async def _stored_outside(self, name: str, sender: str, text: bytes, check: str) -> int:
        """A message to a room this node has no member in; its seq is remembered like a
        left room's, so a room Redis forgot (``chat_room_idle``) never numbers from 1."""
        seq = await self._stored(name, [(sender, text)], check)
        if name not in self._rooms:
            self._high[name] = max(self._high.get(name, (0, 0)), (seq, 0))
        return seq

    def _deadline(self) -> int:
        """When a script sent now must no longer run, in ms on Redis's clock."""
        return int((time.time() + TIMEOUT - DEADLINE_MARGIN) * 1000) + self._clock_offset

    # presence ---------------------------------------------------------------------------

    def _entry(self, member: Member, nick: str) -> bytes:
        return ENTRY.encode(
            {"n": nick, "k": nick_key(nick), "o": self.node_id, "c": member.conn, "u": member.user}
        )

    async def join(
        self, room: str, member: Member, nick: str, *, since: int | None, count: int
    ) -> Joined:
        state = self._room(room)
        state.local += 1
        key = nick_key(nick)
        try:
            with _unavailable():
                assert state.subscribed is not None
                async with asyncio.timeout(TIMEOUT):
                    await asyncio.shield(state.subscribed)
                    await self._directory.room_changed(room)
                args: list[Any] = [
                    member.id,
                    nick,
                    key,
                    self._entry(member, nick),
                    f"{time.time():.3f}",
                ]
                args += [-1 if since is None else since, count]
                result = await self._on_lane(
                    room,
                    lambda: self._script(
                        "join", state.keys.all, [self._floor(room), *args, self._deadline()]
                    ),
                )
        except BaseException:
            state.local -= 1
            self._release_room(room)
            raise
        if result[0] < 0:
            state.local -= 1
            self._release_room(room)
            if result[0] == -3:
                raise BackendUnavailable("the chat broker (Redis) answered too late; not joined")
            raise ChatNickTaken(f"the nick {nick} is in use in {room}")
        seq, k, entries, history = int(result[0]), int(result[1]), result[2], result[3]
        state.order.start_at((seq, k))
        self._presence.claim(room, member, nick)
        self._entries[member.id] = (room, member, nick)
        await self._reach_quietly(member, nick)
        kept = stored_messages(room, history)
        if since is None:
            kept.reverse()
        return Joined(seq, nicks(entries), kept[-self._keep :])

    async def history(self, room: str, before: int | None, limit: int) -> History:
        """A read of the room's stream below ``before``, newest first, one more than
        asked (that one says whether older messages are kept); no script, no lane."""
        top = "+" if before is None else f"({before}-0"
        with _unavailable():
            async with asyncio.timeout(TIMEOUT):
                raw = await self.redis.xrevrange(Keys(room).log, top, "-", count=limit + 1)
        found = stored_messages(room, raw)
        found.reverse()
        return History(found[-limit:], len(found) > limit)

    async def leave(self, room: str, member: Member) -> None:
        nick = self._presence.release(room, member)
        if nick is None:
            return
        self._entries.pop(member.id, None)
        state = self._rooms[room]
        try:
            await self._on_lane(room, lambda: self._leave_script(room, member.id))
        except _FAILURES as exc:
            log.warning("leaving %s failed (%r); retrying in the background", room, exc)
            self._lease.unleft.add((room, member.id))
        await self._reach_quietly(member, nick)
        state.local -= 1
        if state.local == 0:
            with contextlib.suppress(*_FAILURES):
                await self._directory.room_changed(room)
        self._release_room(room)

    async def _leave_script(self, room: str, member_id: str) -> int:
        args = [self._floor(room), member_id, f"{time.time():.3f}", self._idle_ms]
        return int(await self._script("leave", Keys(room).all, args))

    async def rename(self, room: str, member: Member, nick: str) -> str:
        if room not in self._rooms:
            raise ChatNotJoined(f"not in {room}")
        state = self._rooms[room]
        key = nick_key(nick)
        with _unavailable():
            result = await self._on_lane(
                room,
                lambda: self._script(
                    "rename",
                    state.keys.all,
                    [
                        self._floor(room),
                        member.id,
                        nick,
                        key,
                        self._entry(member, nick),
                        f"{time.time():.3f}",
                        self._deadline(),
                    ],
                ),
            )
        if result[0] == -3:
            raise BackendUnavailable("the chat broker (Redis) answered too late; not renamed")
        if result[0] == -2:
            raise ChatNotJoined(f"not in {room}")
        if result[0] == -1:
            raise ChatNickTaken(f"the nick {nick} is in use in {room}")
        old = result[0].decode()
        self._presence.rename(room, member, nick)
        self._entries[member.id] = (room, member, nick)
        await self._reach_quietly(member, old, nick)
        return str(old)

    async def _reach_quietly(self, member: Member, *names: str) -> None:
        """The directory's record of ``names`` once the room change is done: its failure
        must not undo the change (the client would think it failed); DMs may miss the
        name until the node registers again."""
        try:
            await self._directory.names_changed(member, *names)
        except _FAILURES as exc:
            log.warning("recording who %s reaches failed: %r", escape(names[-1], 64), exc)
            self._lease.registered = False  # the lease keeper writes the reach table again

    def _local(self, name: str) -> int:
        room = self._rooms.get(name)
        return 0 if room is None else room.local

    async def members(self, room: str) -> list[str]:
        with _unavailable():
            async with asyncio.timeout(TIMEOUT):
                return nicks(await self.redis.hvals(Keys(room).members))

    async def rooms(self) -> list[tuple[str, int]]:
        with _unavailable():
            async with asyncio.timeout(TIMEOUT):
                return await self._directory.rooms()

    async def direct(self, dm: Direct, key: str) -> int:
        with _unavailable():
            async with asyncio.timeout(TIMEOUT):
                return await self._directory.direct(dm, key)
