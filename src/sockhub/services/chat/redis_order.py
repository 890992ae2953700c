"""One room's order on one node: what pub/sub hands over, put back into ``seq`` order.

Every message and every event of a room takes a ``seq`` from the room's counter in
Redis (events take one too, so they have a place in the order), and reaches each node
over pub/sub. Pub/sub can lose things (a dropped subscriber connection, a Redis
restart), so a node never trusts it blindly: it hands the node strictly increasing
``seq`` only, and when one is missing it holds what came after and reads the gap back
from the room's stream (``repair``). Messages come back from the stream; an event is not
stored, so one lost with pub/sub is skipped (the member list stays right: ``chat.who``
reads Redis).

Plain logic, no I/O: the broker supplies ``read`` (the stream) and the clock.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from .broker import ChatNode, Event, Message

__all__ = ["REPAIR_GRACE", "Item", "RoomOrder"]

log = logging.getLogger("sockhub.chat")

REPAIR_GRACE = 0.2
"""How long a gap may stay open before the stream is read: what the node learnt from a
script's reply usually arrives over pub/sub a moment later."""

REPAIR_RETRY = 0.5
"""Pause between repairs while Redis cannot be read."""


@dataclass(frozen=True, slots=True)
class Item:
    """A run of messages (``first`` .. ``last``) or one event (``first == last``)."""

    first: int
    last: int
    messages: tuple[Message, ...] = ()
    event: Event | None = None


Reader = Callable[[int, int], Awaitable[list[Message]]]
"""The stored messages with ``seq`` in (after, upto], oldest first."""


class RoomOrder:
    """Hands ``node`` one room's items in ``seq`` order, each once, repairing gaps."""

    def __init__(self, node: ChatNode, read: Reader) -> None:
        self._node = node
        self._read = read
        self.last: int | None = None
        """The latest ``seq`` handed over (or skipped); None until the first join says
        where this node starts."""
        self.high = 0
        """The highest ``seq`` known to exist."""
        self._held: dict[int, Item] = {}
        self._waiters: list[tuple[int, asyncio.Future[int]]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._repairing: asyncio.Task[None] | None = None
        self.closed = False

    # what arrives -----------------------------------------------------------------------

    def arrive(self, item: Item) -> None:
        """An item from pub/sub."""
        self.high = max(self.high, item.last)
        if self.last is not None and item.last <= self.last:
            return
        self._held[item.first] = item
        self._drain()

    def start_at(self, seq: int) -> None:
        """A join on this node was answered at ``seq`` (its own event): its member sees
        what follows, the node's other members the event too."""
        self.high = max(self.high, seq)
        if self.last is None:
            self.last = seq - 1
            self._drain()
        elif self.last < seq:
            self._gap()

    def known(self, seq: int) -> None:
        """``seq`` exists (a script said so); pub/sub should bring it, else repair."""
        self.high = max(self.high, seq)
        if self.last is not None and self.last < seq:
            self._gap()

    def wait(self, seq: int) -> asyncio.Future[int]:
        """Resolves to ``seq`` once it has been handed to the node (or skipped)."""
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        if self.last is not None and seq <= self.last:
            future.set_result(seq)
        else:
            self._waiters.append((seq, future))
        return future

    def close(self) -> None:
        """The node left the room: stop repairing, answer whoever waits."""
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
        if self._repairing is not None:
            self._repairing.cancel()
        self._settle(force=True)

    # handing over -----------------------------------------------------------------------

    def _drain(self) -> None:
        """Hand over every held item that follows on; open a repair for what is missing."""
        if self.last is None:
            return
        held: dict[int, Item] = self._held
        batch: list[Message | Event] = []
        for first in sorted(held):
            item = held[first]
            if item.last <= self.last:
                del held[first]
                continue
            if first > self.last + 1:
                break
            del held[first]
            batch += self._take(item)
        self._flush(batch)
        self._settle()
        if held or self.high > self.last:
            self._gap()

    def _take(self, item: Item) -> list[Message | Event]:
        """``item``'s part after ``last``, and move ``last`` past it."""
        assert self.last is not None
        fresh: list[Message | Event]
        if item.event is not None:
            fresh = [item.event]
        else:
            fresh = [m for m in item.messages if m.seq > self.last]
        self.last = item.last
        return fresh

    def _flush(self, batch: list[Message | Event]) -> None:
        """Consecutive messages go to the node as one batch; an event ends a batch."""
        run: list[Message] = []
        for entry in batch:
            if isinstance(entry, Event):
                if run:
                    self._node.deliver(run)
                    run = []
                self._node.event(entry)
            else:
                run.append(entry)
        if run:
            self._node.deliver(run)

    def _settle(self, *, force: bool = False) -> None:
        last = self.last if self.last is not None else -1
        keep = []
        for seq, future in self._waiters:
            if future.done():
                continue
            if force or seq <= last:
                future.set_result(seq)
            else:
                keep.append((seq, future))
        self._waiters = keep

    # repairing --------------------------------------------------------------------------

    def _gap(self) -> None:
        if self.closed or self._timer is not None or self._repairing is not None:
            return
        self._timer = asyncio.get_running_loop().call_later(REPAIR_GRACE, self._start_repair)

    def _start_repair(self) -> None:
        self._timer = None
        if self.closed or self.last is None:
            return
        if not self._held and self.high <= self.last:
            return
        self._repairing = asyncio.get_running_loop().create_task(self._repair())

    async def _repair(self) -> None:
        """Read the gap from the stream, then hand over stream and held items in order."""
        assert self.last is not None
        target = max(self.high, *(item.last for item in self._held.values()), self.last)
        after = self.last
        try:
            stored = await self._read(after, target)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("repairing a gap after seq %d failed (%r); retrying", after, exc)
            self._repairing = None
            if not self.closed:
                self._timer = asyncio.get_running_loop().call_later(
                    REPAIR_RETRY, self._start_repair
                )
            return
        self._repairing = None
        if self.closed or self.last != after:
            self._drain()
            return
        log.info("repaired seq %d..%d from the stream", after + 1, target)
        for msg in stored:
            if after < msg.seq <= target:
                self._held.setdefault(msg.seq, Item(msg.seq, msg.seq, (msg,)))
        batch: list[Message | Event] = []
        for first in sorted(self._held):
            item = self._held[first]
            if first > target:
                break
            del self._held[first]
            if item.last > self.last:
                batch += self._take(item)
        self.last = max(self.last, target)
        self._flush(batch)
        self._drain()
