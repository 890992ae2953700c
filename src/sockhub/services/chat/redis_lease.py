"""The node's lease in ``sockhub:{nodes}``: kept alive, taken again under a new id when
Redis forgot it, and claimed from a node that let its own expire.

Each node refreshes its entry (expiry on Redis's clock) every third of the lease; any
node that finds one expired claims it and runs ``reap.lua`` on each room the dead node
had members in (``sockhub:{node:ID}:rooms``), so they leave with ordinary, ordered
events. A node that finds its own lease gone (it was cut off for too long, or Redis
forgot everything) registers under a new id and puts its members back, each in its
room's lane. The broker's side is what the constructor takes: its Redis, its scripts,
its rooms' lanes and floors, and what it knows of its members and the names they hold.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

import hiredis
from redis.exceptions import RedisError

from .broker import Member
from .names import nick_key
from .redis_cluster import Client
from .redis_format import NODES, REAPING, Keys, as_str, node_keys, reach_key
from .redis_subs import Subscriptions

__all__ = ["NodeLease"]

log = logging.getLogger("sockhub.chat")

Script = Callable[[str, list[str], list[Any]], Awaitable[Any]]

_FAILURES = (RedisError, hiredis.ReplyError, OSError, TimeoutError)
"""What a failing or unreachable Redis raises."""


class NodeLease:
    """This node's id and lease, and the reaping of nodes whose lease expired."""

    def __init__(
        self,
        lease: float,
        *,
        idle_ms: int,
        timeout: float,
        script: Script,
        redis: Callable[[], Client],
        floor: Callable[[str], str],
        on_lane: Callable[[str, Callable[[], Awaitable[Any]]], Awaitable[Any]],
        leave_script: Callable[[str, str], Awaitable[int]],
        entry: Callable[[Member, str], bytes],
        entries: dict[str, tuple[str, Member, str]],
        reach: dict[str, int],
    ) -> None:
        self.lease = lease
        self._idle_ms, self._timeout = idle_ms, timeout
        self._script, self._redis, self._floor = script, redis, floor
        self._on_lane, self._leave_script, self._entry = on_lane, leave_script, entry
        self._entries = entries
        """member id -> (room, member, nick) of this node's members, to put back (the
        broker's, kept up to date by it)"""
        self._reach = reach
        """How many of this node's connections hold each name (the broker's)."""
        self._base = secrets.token_hex(6)
        self._epoch = 0
        self.node_id = f"{self._base}.0"
        self.subs: Subscriptions | None = None
        """The node's pub/sub, once started: its DM channel follows the id."""
        self.unleft: set[tuple[str, str]] = set()
        """(room, member id) whose leave Redis did not take yet"""
        self.registered = True
        """False from a lost lease until every member is put back."""

    @property
    def lease_ms(self) -> int:
        return int(self.lease * 1000)

    async def keep_lease(self) -> None:
        """Refresh this node's lease, finish failed leaves, and reap expired nodes
        (every third of the lease)."""
        try:
            alive = await self._script("lease", [NODES], [self.node_id, self.lease_ms, 0])
            if not int(alive):
                self._new_id()
            if not self.registered:
                await self._register_again()
                self.registered = True
            for room, member_id in list(self.unleft):
                await self._leave_script(room, member_id)
                self.unleft.discard((room, member_id))
            await self._reap()
        except _FAILURES as exc:
            log.warning("keeping the node lease failed: %r", exc)

    def _new_id(self) -> None:
        """Redis forgot this node (reaped after a long cut, or restarted empty): take a
        new id, so a reaper still working on the old one cannot remove what is put
        back; ``_register_again`` (retried until it succeeds) puts everything back."""
        old_dm = node_keys(self.node_id)[2]
        self._epoch += 1
        self.node_id = f"{self._base}.{self._epoch}"
        self.registered = False
        log.warning("this node's lease was lost; registering again as %s", self.node_id)
        if self.subs is not None:
            self.subs.remove(old_dm.encode())

    async def _register_again(self) -> None:
        """Register the node's id, its DM channel, and put back every member."""
        await self._script("lease", [NODES], [self.node_id, self.lease_ms, 1])
        if self.subs is not None:
            async with asyncio.timeout(self._timeout):
                await self.subs.add(node_keys(self.node_id)[2].encode())
        rooms_key, keys_key, _ = node_keys(self.node_id)
        for room in {room for room, _, _ in self._entries.values()}:
            await self._redis().sadd(rooms_key, room)
        restoring = [
            self._on_lane(room, functools.partial(self._restore, room, member))
            for room, member, _ in self._entries.values()
        ]
        await asyncio.gather(*restoring)
        async with self._redis().pipeline(transaction=False) as pipe:
            for key, held in self._reach.items():
                pipe.hset(reach_key(key), self.node_id, held)
                pipe.sadd(keys_key, key)
            await pipe.execute()

    async def _restore(self, room: str, member: Member) -> None:
        """Put a member back, in the room's lane: a leave queued meanwhile comes after,
        and a member that left before its turn is not put back."""
        entry = self._entries.get(member.id)
        if entry is None or entry[0] != room:
            return
        nick = entry[2]
        args = [self._floor(room), member.id, nick_key(nick), self._entry(member, nick)]
        await self._script("restore", Keys(room).all, args)

    async def _reap(self) -> None:
        dead = await self._script("claim", [NODES, REAPING], [self.lease_ms * 2])
        for raw in dead:
            node = as_str(raw)
            rooms_key, keys_key, _ = node_keys(node)
            ts = f"{time.time():.3f}"
            for room in await self._redis().smembers(rooms_key):
                name = as_str(room)
                args = [self._floor(name), node, ts, self._idle_ms]
                gone = await self._script("reap", Keys(name).all, args)
                if gone:
                    log.info("node %s is gone: %d member(s) left %s", node, gone, name)
            async with self._redis().pipeline(transaction=False) as pipe:
                for key in await self._redis().smembers(keys_key):
                    pipe.hdel(reach_key(as_str(key)), node)
                pipe.delete(rooms_key, keys_key)
                pipe.zrem(REAPING, node)
                await pipe.execute()
