"""One room's order on one node: what pub/sub hands over, put back into one order.

Every item of a room has a position from the room's counter in Redis: a message
``(seq, 0)``, an event ``(seq of the message before it, k)``, so messages keep
consecutive seqs and events still have their place. Items reach each node over
pub/sub, which can lose things (a dropped subscriber connection, a Redis restart), so
a node never trusts it blindly: it hands the node messages with consecutive seqs only,
each event after the message it follows, and when a message is missing it holds what
came after and reads the gap back from the room's stream (``repair``). An event is not
stored, so one lost with pub/sub is skipped (the member list stays right: ``chat.who``
reads Redis).

Plain logic, no I/O: the broker supplies ``read`` (the stream).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ...protocol.errors import BackendUnavailable
from ...server.background import Background
from .broker import ChatNode, Event, Message

__all__ = ["REPAIR_GRACE", "Item", "Position", "RoomOrder"]

log = logging.getLogger("sockhub.chat")

REPAIR_GRACE = 0.2
"""How long a gap may stay open before the stream is read: what the node learnt from a
script's reply usually arrives over pub/sub a moment later."""

REPAIR_RETRY = 0.5
"""Pause between repairs while Redis cannot be read."""

Position = tuple[int, int]


@dataclass(frozen=True, slots=True)
class Item:
    """A run of messages (seqs ``first`` .. ``last``, ``k`` 0) or one event (``first ==
    last``, the seq of the message before it, ``k`` > 0)."""

    first: int
    last: int
    k: int = 0
    messages: tuple[Message, ...] = ()
    event: Event | None = None


Reader = Callable[[int, int], Awaitable[list[Message]]]
"""The stored messages with ``seq`` in (after, upto], oldest first."""


class RoomOrder:
    """Hands ``node`` one room's items in order, each once, repairing gaps."""

    def __init__(self, node: ChatNode, read: Reader, background: Background) -> None:
        self._node = node
        self._read = read
        self._background = background
        """Owns the repairs (the server's, so shutdown awaits one still reading)."""
        self.last: Position | None = None
        """The latest position handed over (or skipped); None until the first join on
        this node says where it starts."""
        self.high: Position = (0, 0)
        """The latest position known to exist."""
        self._held: dict[Position, Item] = {}
        self._waiters: dict[int, asyncio.Future[int]] = {}
        """message seq -> its sender's answer, settled when the message goes out"""
        self._timer: asyncio.TimerHandle | None = None
        self._repairing: asyncio.Task[None] | None = None
        self.closed = False

    # what arrives -----------------------------------------------------------------------

    def arrive(self, item: Item) -> None:
        """An item from pub/sub."""
        self.high = max(self.high, (item.last, item.k))
        if self.last is not None and self._stale(item, self.last):
            return
        self._held[(item.first, item.k)] = item
        self._drain()

    def start_at(self, position: Position) -> None:
        """A join on this node was answered with its event's ``position``: the member
        sees what follows, the node's other members the event too."""
        self.high = max(self.high, position)
        if self.last is None:
            self.last = (position[0], position[1] - 1)
            self._drain()
        elif self.last[0] < position[0]:
            self._gap()

    def known(self, seq: int) -> None:
        """Message ``seq`` exists (a script said so); pub/sub should bring it, else repair."""
        self.high = max(self.high, (seq, 0))
        if self.last is not None and self.last[0] < seq:
            self._gap()

    def wait(self, seq: int, future: asyncio.Future[int]) -> None:
        """Resolve ``future`` to ``seq`` once message ``seq`` went to the node; fail it
        with ``BackendUnavailable`` when it turned out lost (a Redis restart without
        persistence took it before this node had it)."""
        if self.last is not None and seq <= self.last[0]:
            if not future.done():
                future.set_result(seq)  # delivered already: pub/sub beat the script's reply
        else:
            self._waiters[seq] = future

    def close(self) -> None:
        """The node left the room: stop repairing, answer whoever waits."""
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
        if self._repairing is not None:
            self._repairing.cancel()
        self._settle(force=True)

    # handing over -----------------------------------------------------------------------

    @staticmethod
    def _stale(item: Item, last: Position) -> bool:
        if item.event is None:
            return item.last <= last[0]
        return (item.first, item.k) <= last or item.first < last[0]

    def _next(self, item: Item) -> bool:
        """Whether ``item`` follows on from ``last`` (nothing missing in between)."""
        assert self.last is not None
        if item.event is None:
            return item.first <= self.last[0] + 1
        return item.first == self.last[0]

    def _drain(self, *, upto: int | None = None) -> None:
        """Hand over every held item that follows on; with ``upto`` (a repair read the
        stream that far) also whatever lies beyond a gap up to that seq, skipping it."""
        if self.last is None:
            return
        held = self._held
        batch: list[Message | Event] = []
        for position in sorted(held):
            item = held[position]
            if self._stale(item, self.last):
                del held[position]
                continue
            if not self._next(item) and (upto is None or item.first > upto):
                break
            del held[position]
            batch += self._take(item)
        if upto is not None and self.last[0] < upto:
            self.last = (upto, 0)
        self._flush(batch)
        self._settle()
        if held or self.high[0] > self.last[0]:
            self._gap()

    def _take(self, item: Item) -> list[Message | Event]:
        """``item``'s part after ``last``, and move ``last`` past it."""
        assert self.last is not None
        fresh: list[Message | Event]
        if item.event is not None:
            fresh = [item.event]
        else:
            messages = [m for m in item.messages if m.seq > self.last[0]]
            fresh = list(messages)
            if self._waiters:
                for m in messages:
                    future = self._waiters.pop(m.seq, None)
                    if future is not None and not future.done():
                        future.set_result(m.seq)
        self.last = (item.last, item.k)
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
        """Fail the senders whose message was skipped (``last`` passed it undelivered);
        with ``force`` (the node left the room) answer everyone still waiting."""
        last = self.last[0] if self.last is not None else -1
        for seq in [s for s in self._waiters if force or s <= last]:
            future = self._waiters.pop(seq)
            if future.done():
                continue
            if force:
                future.set_result(seq)
            else:
                future.set_exception(BackendUnavailable("the message was lost with Redis"))

    # repairing --------------------------------------------------------------------------

    def _gap(self) -> None:
        if self.closed or self._timer is not None or self._repairing is not None:
            return
        self._timer = asyncio.get_running_loop().call_later(REPAIR_GRACE, self._start_repair)

    def _start_repair(self) -> None:
        self._timer = None
        if self.closed or self.last is None:
            return
        if not self._held and self.high[0] <= self.last[0]:
            return
        self._repairing = self._background.spawn(self._repair(), "chat gap repair")

    async def _repair(self) -> None:
        """Read the missing messages from the stream, then hand over in order."""
        assert self.last is not None
        after = self.last[0]
        target = max(self.high[0], *(item.last for item in self._held.values()), after)
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
        if self.closed:
            return
        log.info("repaired seq %d..%d from the stream", after + 1, target)
        for msg in stored:
            if msg.seq > self.last[0]:
                self._held.setdefault((msg.seq, 0), Item(msg.seq, msg.seq, messages=(msg,)))
        self._drain(upto=target)
