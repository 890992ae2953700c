"""History totals over every room in Redis: ``chat_history_max_messages`` and
``chat_history_max_bytes``, the oldest kept messages trimmed first whatever their room.

A room's scripts keep its own account (``prelude.lua``: each stream entry holds the
bytes appended before it, the counter the bytes appended in all), so a room's kept
messages and bytes are exact whatever trimmed it. A total over rooms cannot be kept by
those scripts: in a Redis Cluster the rooms live on many slots and no script may touch
two. So each node copies every result of its publish scripts into one index under the
tag ``{history}`` (``index.lua``: per room its kept messages, bytes and oldest kept ts;
the totals), one call every ``INDEX_EVERY`` at most; a state ``s:g`` (last seq, trims
since; ``c`` before them, when the room was made, as a room forgotten and made again
numbers anew) orders a room's results, as nodes write them in no particular order.

One node at a time, the holder of a lease, trims (``trimmer.lua``, every ``interval``):
while the totals are over a limit it takes the rooms with the oldest kept messages and
trims them (``trim.lua``, in the room's slot) no further than the next room's oldest,
so the messages go oldest first across rooms, and writes what each trim left back to
the index. The index lags the rooms by ``INDEX_EVERY`` and the trimmer runs every
``interval``: Redis holds at most the limits plus what every node publishes meanwhile
(docs/limits.md). A room forgotten by ``chat_room_idle`` leaves the index when the
trimmer finds it gone: when trimming reaches it, or when the sweep does (each run
looks at ``SWEEP`` more rooms of the index, round and round), which also corrects an
entry that missed its room's latest state.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

import hiredis
from redis.exceptions import RedisError

from ...server.background import Background
from .coalesce import Coalesced
from .redis_format import HISTORY, Keys, as_str

__all__ = ["WINDOW", "Kept", "Totals"]

log = logging.getLogger("sockhub.chat")

WINDOW = 256
"""Rooms one trimming round looks at (one trim script each, sent together)."""

INDEX_EVERY = 0.1
"""Seconds between two index writes of a node. One write per loop turn was, with ten
busy rooms on one node, a script for every five publish scripts (3,598 scripts for
3,000 publishes); one per 0.1 s is a handful a second, and adds a tenth of a second
of traffic to the overshoot."""

SWEEP = 128
"""Rooms of the index the trimmer looks at per run, whatever the totals."""

MAX_CUT = 4096
"""Messages one trim script removes at most (a script holds Redis while it runs)."""

EVERYTHING = 1 << 60
"""A need no room meets: the trim stops at the ts bound only."""

Script = Callable[[str, list[str], list[Any]], Awaitable[Any]]

_FAILURES = (RedisError, hiredis.ReplyError, OSError, TimeoutError)
"""What a failing or unreachable Redis raises."""


class Kept(NamedTuple):
    """A room's history after a script: its state, kept messages, bytes, oldest ts."""

    c: int
    s: int
    g: int
    n: int
    b: int
    head: str

    def args(self, room: str) -> list[Any]:
        return [room, self.c, self.s, self.g, self.n, self.b, self.head]


class Totals:
    """This node's side of the totals: its index writes, and the trimmer when it holds
    the lease."""

    def __init__(
        self,
        script: Script,
        deadline: Callable[[], int],
        node_id: Callable[[], str],
        *,
        max_messages: int,
        max_bytes: int,
        lease: float,
    ) -> None:
        self._script, self._deadline, self._node_id = script, deadline, node_id
        self.max_messages, self.max_bytes = max_messages, max_bytes
        self.lease = lease
        self.interval = min(1.0, lease / 3)
        """Seconds between two trimmer runs (and lease refreshes)."""
        self._pending: dict[str, Kept] = {}
        """Rooms whose latest result is not in the index yet."""
        self._writes = Coalesced(self._write)
        self._cursor = "0"
        """Where the sweep goes on (HSCAN's cursor over the index)."""

    def start(self, background: Background) -> None:
        background.every(self.interval, self.tick, "chat history trimmer")

    def kept(self, room: str, state: Kept) -> None:
        """A publish script's result: goes to the index with this loop turn's others."""
        self._pending[room] = state
        self._writes.note([room])

    async def flush(self) -> None:
        """Wait for the index writes under way (at stop)."""
        await self._writes.idle()

    async def _write(self, rooms: set[str]) -> None:
        states = {room: self._pending[room] for room in rooms if room in self._pending}
        try:
            await self._index([arg for room, kept in states.items() for arg in kept.args(room)])
        except _FAILURES as exc:
            log.warning("recording the history of %d room(s) failed: %r", len(states), exc)
        else:
            for room, kept in states.items():
                if self._pending.get(room) is kept:
                    del self._pending[room]
        # what changes meanwhile waits, and goes in the next write (a failed one's rooms
        # are still pending: the next tick writes them again)
        await asyncio.sleep(INDEX_EVERY)

    async def _index(self, args: list[Any]) -> int:
        """Write states to the index; how many changed it (the others were older)."""
        if not args:
            return 0
        return int((await self._script("index", list(HISTORY[1:]), args))[2])

    async def tick(self) -> None:
        """Write what failed to be written; then, holding the lease, trim while over
        (a Redis away is a warning: the next tick tries again)."""
        if self._pending:
            self._writes.note(list(self._pending))
        try:
            while True:
                args = [self._node_id(), int(self.lease * 1000), WINDOW]
                plan = await self._script("trimmer", list(HISTORY), [*args, *self._limits])
                if not plan:
                    return  # another node trims
                if len(plan) < 4 or not await self._round(int(plan[0]), int(plan[1]), *plan[2:]):
                    break
            await self._sweep()
        except _FAILURES as exc:
            log.warning("trimming the chat history failed: %r", exc)

    @property
    def _limits(self) -> tuple[int, int]:
        return self.max_messages, self.max_bytes

    async def _round(self, n: int, b: int, heads: list[Any], entries: list[Any]) -> bool:
        """One trimming round over the oldest rooms; whether it changed anything."""
        over_n, over_b = n - self.max_messages, b - self.max_bytes
        rooms = [as_str(name) for name in heads[0 : 2 * WINDOW : 2]]
        ts = [as_str(t) for t in heads[1::2]]
        stored = [_entry(raw) for raw in entries]
        if not rooms:
            return False
        if sum(e.n for e in stored) <= over_n or sum(e.b for e in stored) <= over_b:
            # every message of these rooms older than the next room's is over: all go
            bound = ts[WINDOW] if len(ts) > WINDOW else ""
            cuts = [(room, EVERYTHING, EVERYTHING, bound) for room in rooms]
        else:  # the oldest room alone, no further than the next one's oldest
            cuts = [(rooms[0], max(over_n, 0), max(over_b, 0), ts[1] if len(ts) > 1 else "")]
        # a round that changed nothing ends the run: what it read is what the next reads
        return await self._cut(cuts, stored) > 0

    async def _sweep(self) -> None:
        """Look at the next ``SWEEP`` rooms of the index: a trim of nothing says what
        each keeps now, or that it is gone."""
        cursor, flat = await self._script("sweep", [HISTORY[3]], [self._cursor, SWEEP])
        self._cursor = as_str(cursor)
        rooms = [as_str(room) for room in flat[0::2]]
        await self._cut([(room, 0, 0, "") for room in rooms], [_entry(e) for e in flat[1::2]])

    async def _cut(self, cuts: list[tuple[str, int, int, str]], stored: list[Kept]) -> int:
        """Run the trims ``cuts`` at once and write what they left to the index (a room
        found gone leaves it, unless written again since ``stored``, its entry before);
        how many entries that changed."""
        results = await asyncio.gather(*(self._trim(*cut) for cut in cuts))
        updates: list[Any] = []
        for (room, *_), before, result in zip(cuts, stored[: len(cuts)], results, strict=True):
            if result == "late":
                continue
            if result == "gone":
                updates += [room, before.c, before.s, before.g, -1, 0, ""]
                continue
            assert not isinstance(result, str)
            updates += result.args(room)
        return await self._index(updates)

    async def _trim(self, room: str, need_n: int, need_b: int, bound: str) -> Kept | str:
        """One room's cut: what it left, or ``gone`` (the room was forgotten) or
        ``late`` (Redis answered too late: it did nothing)."""
        args = [need_n, need_b, bound, self._deadline(), MAX_CUT]
        result = await self._script("trim", Keys(room).all, args)
        status = as_str(result[0])
        if status != "ok":
            return status
        c, s, g, n, b, head = result[1:]
        return Kept(int(c), int(s), int(g), int(n), int(b), as_str(head))


def _entry(raw: Any) -> Kept:
    """An index entry (``c s g n b``; empty: no entry) as a state."""
    parts = as_str(raw).split()
    if len(parts) != 5:
        return Kept(0, 0, 0, 0, 0, "")
    c, s, g, n, b = (int(p) for p in parts)
    return Kept(c, s, g, n, b, "")
