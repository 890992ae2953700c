"""The in-process broker: presence and ``seq`` in memory, history in SQLite.

Messages published during one event-loop turn go out to the members together at the
end of the turn, and to the history as one transaction on its worker thread; while
that transaction runs the next batch gathers, so the disk never limits how many
messages a second a room can take. A sender's ``ok`` waits until its message is stored.

Delivering before the message is on disk keeps the fan-out in the loop turn that read
it, but a crash could then lose a message members have already seen. Its ``seq`` must
never be handed out again (a client rejoining with ``since`` would skip the new one),
so every batch also stores a ``reserved`` mark ``seq_lookahead`` (the limit
``chat_seq_lookahead``) above the room's
latest ``seq``, and a message is delivered before it is stored only while its ``seq``
is under a mark already on disk. A restart continues above the mark: after a crash
numbering jumps (gaps are allowed), after a clean stop it goes on without a gap.

Messages and events leave in one queue, in the order they happened.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Awaitable, Callable

from ...protocol.errors import BackendUnavailable, ChatNickTaken
from ...server.limits import Limits
from .broker import ChatBroker, ChatNode, Direct, Event, History, Joined, Member, Message
from .history import HistoryStore
from .presence import Presence

__all__ = ["MemoryBroker"]

log = logging.getLogger("sockhub.chat")

FORGET_EVERY = 60.0
"""Seconds between two looks for rooms to forget (empty and idle past ``chat_room_idle``)."""


class _Pending:
    """A published message on its way to the members and to the disk."""

    __slots__ = ("delivered", "error", "future", "message", "ready", "stored")

    def __init__(self, message: Message, future: asyncio.Future[int], ready: bool) -> None:
        self.message = message
        self.future = future
        self.ready = ready
        """May go to the members: stored, or its ``seq`` is under the stored mark."""
        self.delivered = False
        self.stored = False
        self.error: BaseException | None = None

    def settle(self) -> None:
        """Answer the sender once the message is both delivered and stored."""
        if not (self.delivered and self.stored) or self.future.done():
            return
        if self.error is not None:
            self.future.set_exception(self.error)
        else:
            self.future.set_result(self.message.seq)


class MemoryBroker(ChatBroker):
    """One process's rooms; ``store`` holds the history."""

    def __init__(
        self, store: HistoryStore, seq_lookahead: int = Limits().chat_seq_lookahead
    ) -> None:
        self._store = store
        self._lookahead = seq_lookahead
        """How far the stored ``reserved`` mark runs ahead of a room's latest ``seq``."""
        self._node: ChatNode | None = None
        self._presence = Presence()
        self._seq: dict[str, int] = {}
        """the latest ``seq`` handed out per room"""
        self._durable: dict[str, int] = {}
        """the ``reserved`` mark on disk per room"""
        self._queue: collections.deque[_Pending | Event] = collections.deque()
        """what the members have not been handed yet, in order"""
        self._unstored: collections.deque[_Pending] = collections.deque()
        """what the disk has not confirmed yet, in order (written or waiting)"""
        self._unsent: list[_Pending] = []
        self._writing: asyncio.Future[None] | None = None
        self._turn_scheduled = False
        self._forgetting: asyncio.Task[None] | None = None

    async def start(self, node: ChatNode) -> None:
        self._node = node
        reserved = await self._store.open()
        self._seq = dict(reserved)
        self._durable = dict(reserved)
        self._forgetting = asyncio.get_running_loop().create_task(self._forget_idle())

    async def _forget_idle(self) -> None:
        while True:
            await asyncio.sleep(FORGET_EVERY)
            await self.forget_idle()

    async def forget_idle(self) -> list[str]:
        """Forget the rooms the store finds empty and idle, in memory too: unless a room
        was joined or spoken in meanwhile, its numbering starts again at 1."""
        seen = dict(self._seq)
        try:
            forgotten = await self._store.forget(self._busy())
        except Exception:
            log.exception("forgetting idle chat rooms failed")
            return []
        busy = self._busy()
        gone = [r for r in forgotten if r not in busy and self._seq.get(r) == seen.get(r)]
        for room in gone:
            self._seq.pop(room, None)
            self._durable.pop(room, None)
        return gone

    def _busy(self) -> frozenset[str]:
        """Rooms not to forget: with members, or with messages not yet stored."""
        rooms = {room for room, _ in self._presence.rooms()}
        rooms.update(p.message.room for p in self._unstored)
        return frozenset(rooms)

    async def stop(self) -> None:
        if self._forgetting is not None:
            self._forgetting.cancel()
        self._deliver()
        while self._writing is not None or self._unsent:
            if self._writing is None:
                self._write()
            if self._writing is not None:
                await asyncio.wait([self._writing])
        await self._store.settle(self._seq)
        await self._store.close()

    # presence ---------------------------------------------------------------------------

    async def join(
        self, room: str, member: Member, nick: str, *, since: int | None, count: int
    ) -> Joined:
        self._presence.claim(room, member, nick)
        self._announce(Event(room, "join", nick, time.time(), member.id))
        members = self._presence.nicks(room)
        seq = self._seq.get(room, 0)
        if since is None and count == 0:
            return Joined(seq, members)
        # Everything up to ``seq`` is on disk or still in ``_unstored``; the read is
        # queued now, behind every write already handed to the disk.
        unstored = self._unstored_in(room, lambda n: since is None or n > since)
        try:
            stored = await self._read(
                room, lambda: self._store.read(room, since=since, count=count)
            )
        except BackendUnavailable:
            await self.leave(room, member)
            raise
        history = _merged(stored, unstored, seq)
        return Joined(seq, members, history if since is not None else history[-count:])

    async def history(self, room: str, before: int | None, limit: int) -> History:
        seq = self._seq.get(room, 0)
        unstored = self._unstored_in(room, lambda n: before is None or n < before)
        stored = await self._read(room, lambda: self._store.read_before(room, before, limit + 1))
        found = _merged(stored, unstored, seq)[-(limit + 1) :]
        return History(found[-limit:], len(found) > limit)

    def _unstored_in(self, room: str, wanted: Callable[[int], bool]) -> list[Message]:
        """The room's messages the disk has not confirmed yet whose ``seq`` is ``wanted``."""
        return [
            p.message for p in self._unstored if p.message.room == room and wanted(p.message.seq)
        ]

    @staticmethod
    async def _read(room: str, reading: Callable[[], Awaitable[list[Message]]]) -> list[Message]:
        """Queue a read of the store now (behind every write already handed to it)."""
        try:
            return await reading()
        except Exception as exc:
            log.exception("reading the history of %s failed", room)
            raise BackendUnavailable("the chat history cannot be read") from exc

    async def leave(self, room: str, member: Member) -> None:
        nick = self._presence.release(room, member)
        if nick is not None:
            self._announce(Event(room, "leave", nick, time.time(), member.id))

    async def rename(self, room: str, member: Member, nick: str) -> str:
        old = self._presence.rename(room, member, nick)
        if nick != old:
            self._announce(Event(room, "nick", nick, time.time(), member.id, old))
        return old

    async def members(self, room: str) -> list[str]:
        return self._presence.nicks(room)

    async def rooms(self) -> list[tuple[str, int]]:
        return self._presence.rooms()

    async def direct(self, dm: Direct, key: str) -> int:
        conns = self._presence.reach(key)
        if conns and self._node is not None:
            self._node.direct(dm, conns)
        return len(conns)

    # messages ---------------------------------------------------------------------------

    def publish(
        self, room: str, sender: str, text: bytes, *, unannounced: bool = False
    ) -> Awaitable[int]:
        loop = asyncio.get_running_loop()
        if unannounced and self._presence.held(room, sender):
            taken: asyncio.Future[int] = loop.create_future()
            taken.set_exception(ChatNickTaken(f"the nick {sender} is in use in {room}"))
            return taken
        seq = self._seq.get(room, 0) + 1
        self._seq[room] = seq
        pending = _Pending(
            Message(room, seq, sender, round(time.time(), 3), text),
            loop.create_future(),
            seq <= self._durable.get(room, 0),
        )
        self._queue.append(pending)
        self._unstored.append(pending)
        self._unsent.append(pending)
        if not self._turn_scheduled:
            self._turn_scheduled = True
            loop.call_soon(self._end_turn)
        return pending.future

    def _announce(self, event: Event) -> None:
        self._queue.append(event)
        self._deliver()

    def _end_turn(self) -> None:
        """Everything published this turn: to the members, and to the disk."""
        self._turn_scheduled = False
        self._deliver()
        if self._writing is None:
            self._write()

    def _write(self) -> None:
        """Hand every message gathered since the last write to the store as one batch."""
        if not self._unsent:
            return
        batch, self._unsent = self._unsent, []
        reserved = {p.message.room: self._seq[p.message.room] + self._lookahead for p in batch}
        writing = self._store.write([p.message for p in batch], reserved)
        self._writing = writing
        writing.add_done_callback(lambda done: self._written(batch, reserved, done))

    def _written(
        self, batch: list[_Pending], reserved: dict[str, int], done: asyncio.Future[None]
    ) -> None:
        self._writing = None
        exc = None if done.cancelled() else done.exception()
        failed = done.cancelled() or exc is not None
        if failed:
            log.error("storing %d chat messages failed: %r", len(batch), exc)
            error = BackendUnavailable("the chat history cannot be written")
        else:
            for room, mark in reserved.items():
                self._durable[room] = max(self._durable.get(room, 0), mark)
        for pending in batch:
            self._unstored.popleft()
            pending.stored = pending.ready = True
            if failed:
                pending.error = error
            pending.settle()
        for item in self._queue:
            if isinstance(item, _Pending) and not item.ready:
                item.ready = item.message.seq <= self._durable.get(item.message.room, 0)
        self._deliver()
        self._write()

    def _deliver(self) -> None:
        """Hand out, in order, every queued item that nothing unready holds back.

        Consecutive messages go to the node as one batch, so each member gets them in
        one piece; an event in between ends a batch, keeping the order."""
        queue, node = self._queue, self._node
        batch: list[Message] = []
        while queue:
            head = queue[0]
            if isinstance(head, Event):
                queue.popleft()
                if node is not None:
                    if batch:
                        node.deliver(batch)
                        batch = []
                    node.event(head)
                continue
            if not head.ready:
                break
            queue.popleft()
            head.delivered = True
            if head.error is None:
                batch.append(head.message)
            head.settle()
        if batch and node is not None:
            node.deliver(batch)


def _merged(stored: list[Message], unstored: list[Message], seq: int) -> list[Message]:
    """What was read from the disk (up to ``seq``, the latest handed out when the read was
    queued) and what is still on its way to it, once each, in ``seq`` order."""
    kept = {m.seq: m for m in stored if m.seq <= seq}
    kept.update((m.seq, m) for m in unstored)
    return [kept[s] for s in sorted(kept)]
