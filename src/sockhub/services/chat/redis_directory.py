"""Where names and rooms are, across the nodes sharing a Redis: this node's record of
what it holds, and the reads that use every node's record.

Each node records how many of its connections hold each name (``sockhub:{reach:KEY}``,
node id -> count, and the node's own set of those keys) and which rooms it has members
in (``sockhub:{node:ID}:rooms``, which the reaper of a dead node reads too). Each kind is
written in one pipelined call per loop turn (``coalesce.Coalesced``): a mass
disconnect is one call, not a thousand. A direct message goes to the nodes that hold
its name; the rooms list is the union of every node's rooms.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from .broker import Direct, Member
from .coalesce import Coalesced
from .names import nick_key
from .presence import Presence
from .redis_cluster import Client
from .redis_format import NODES, PACK, Keys, as_str, node_keys, reach_key

__all__ = ["Directory"]


class Directory:
    """This node's entries in the directory, and the directory's reads. The broker gives
    its Redis, its id (which changes when a lost lease is taken again), who holds which
    name here, and how many members it has in a room."""

    def __init__(
        self,
        redis: Callable[[], Client],
        node_id: Callable[[], str],
        presence: Presence,
        local: Callable[[str], int],
        timeout: float,
    ) -> None:
        self._redis = redis
        self._node_id = node_id
        self._presence = presence
        self._local = local
        self._timeout = timeout
        self.sharded = True
        """Publish with SPUBLISH (Redis >= 7), else PUBLISH; set by the broker's start."""
        self.reach: dict[str, int] = {}
        """How many of this node's connections hold each name, as last written: what the
        lease keeper writes again under a new id, and what a clean stop withdraws."""
        self._reach_writes = Coalesced(self._write_reach)
        self._room_writes = Coalesced(self._write_rooms)

    async def names_changed(self, member: Member, *nicks: str) -> None:
        """Record how many of this node's connections hold each of ``nicks`` (and the
        member's user name) now."""
        keys = {nick_key(n) for n in nicks}
        if member.user is not None:
            keys.add(nick_key(member.user))
        await self._reach_writes.changed(keys)

    async def room_changed(self, name: str) -> None:
        """Record whether this node has members in ``name`` now."""
        await self._room_writes.changed([name])

    async def idle(self) -> None:
        """Wait for the writes under way."""
        await self._reach_writes.idle()
        await self._room_writes.idle()

    def withdraw(self, pipe: Any) -> None:
        """Add to ``pipe`` the commands that take this node's entries out (a clean stop)."""
        node_id = self._node_id()
        for key in self.reach:
            pipe.hdel(reach_key(key), node_id)
        pipe.delete(*node_keys(node_id)[:2])

    async def rooms(self) -> list[tuple[str, int]]:
        """Every room some node has members in, with its member count."""
        redis = self._redis()
        nodes = await redis.zrange(NODES, 0, -1)
        async with redis.pipeline(transaction=False) as pipe:
            for node in nodes:
                pipe.smembers(node_keys(as_str(node))[0])
            names = sorted({as_str(r) for found in await pipe.execute() for r in found})
        async with redis.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.hlen(Keys(name).members)
            counts = await pipe.execute()
        return [(name, int(n)) for name, n in zip(names, counts, strict=True) if n]

    async def direct(self, dm: Direct, key: str) -> int:
        """Publish ``dm`` to each node holding the name ``key``: the connections reached."""
        redis = self._redis()
        holders = await redis.hgetall(reach_key(key))
        reached = {as_str(node): int(n) for node, n in holders.items() if int(n) > 0}
        if not reached:
            return 0
        payload = PACK.encode((dm.to, dm.sender, dm.ts, dm.text, key))
        async with redis.pipeline(transaction=False) as pipe:
            for node in reached:
                channel = node_keys(node)[2]
                if self.sharded:
                    pipe.execute_command("SPUBLISH", channel, payload)
                else:
                    pipe.publish(channel, payload)
            await pipe.execute()
        return sum(reached.values())

    async def _write_rooms(self, names: set[str]) -> None:
        rooms_key = node_keys(self._node_id())[0]
        async with self._redis().pipeline(transaction=False) as pipe:
            for name in names:
                if self._local(name) > 0:
                    pipe.sadd(rooms_key, name)
                else:
                    pipe.srem(rooms_key, name)
            await self._execute(pipe)

    async def _write_reach(self, keys: set[str]) -> None:
        node_id = self._node_id()
        keys_key = node_keys(node_id)[1]
        async with self._redis().pipeline(transaction=False) as pipe:
            for key in keys:
                held = len(self._presence.reach(key))
                if held:
                    self.reach[key] = held
                    pipe.hset(reach_key(key), node_id, held)
                    pipe.sadd(keys_key, key)
                else:
                    self.reach.pop(key, None)
                    pipe.hdel(reach_key(key), node_id)
                    pipe.srem(keys_key, key)
            await self._execute(pipe)

    async def _execute(self, pipe: Any) -> None:
        async with asyncio.timeout(self._timeout):
            await pipe.execute()
