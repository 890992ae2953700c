"""The in-process broker: presence and ``seq`` in memory, history in SQLite.

Messages published during one event-loop turn are stored as one transaction on the
history's worker thread; while that transaction runs the next batch gathers, so the
disk never limits how many messages a second a room can take, only how late the
first of a batch is acknowledged. Messages and events leave in one queue, in the
order they happened, and a message leaves only once it is stored.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Awaitable

from ...protocol.errors import BackendUnavailable, ChatNickTaken, ChatNotJoined
from .broker import ChatBroker, ChatNode, Direct, Event, Joined, Member, Message
from .history import HistoryStore
from .names import nick_key

__all__ = ["MemoryBroker"]

log = logging.getLogger("sockhub.chat")


class _Room:
    __slots__ = ("members", "nicks")

    def __init__(self) -> None:
        self.nicks: dict[str, str] = {}
        """nick key -> member id"""
        self.members: dict[str, tuple[Member, str]] = {}
        """member id -> (member, nick)"""


class _Pending:
    """A published message until it is stored (or storing it failed)."""

    __slots__ = ("error", "future", "message", "stored")

    def __init__(self, message: Message, future: asyncio.Future[int]) -> None:
        self.message = message
        self.future = future
        self.stored = False
        self.error: BaseException | None = None


class MemoryBroker(ChatBroker):
    """One process's rooms; ``store`` holds the history."""

    def __init__(self, store: HistoryStore) -> None:
        self._store = store
        self._node: ChatNode | None = None
        self._rooms: dict[str, _Room] = {}
        self._holders: dict[str, collections.Counter[str]] = {}
        """nick or user key -> connection id -> how many memberships hold it"""
        self._seq: dict[str, int] = {}
        self._committed: dict[str, int] = {}
        self._queue: collections.deque[_Pending | Event] = collections.deque()
        self._unsent: list[_Pending] = []
        self._writing: asyncio.Future[None] | None = None
        self._flush_scheduled = False

    async def start(self, node: ChatNode) -> None:
        self._node = node
        last = await self._store.open()
        self._seq = dict(last)
        self._committed = dict(last)

    async def stop(self) -> None:
        while self._writing is not None or self._unsent:
            if self._writing is None:
                self._flush()
            if self._writing is not None:
                await asyncio.wait([self._writing])
        await self._store.close()

    # presence ---------------------------------------------------------------------------

    async def join(
        self, room: str, member: Member, nick: str, *, since: int | None, count: int
    ) -> Joined:
        key = nick_key(nick)
        state = self._rooms.get(room)
        if state is None:
            state = self._rooms[room] = _Room()
        if key in state.nicks:
            raise ChatNickTaken(f"the nick {nick} is in use in {room}")
        state.nicks[key] = member.id
        state.members[member.id] = (member, nick)
        self._hold(member, key, 1)
        self._announce(Event(room, "join", nick, time.time(), member.id))
        members = self._nicks(state)
        if since is None and count == 0:
            return Joined(self._committed.get(room, 0), members)
        try:
            history, last = await self._store.read(room, since=since, count=count)
        except Exception as exc:
            log.exception("reading the history of %s failed", room)
            await self.leave(room, member)
            raise BackendUnavailable("the chat history cannot be read") from exc
        return Joined(max(last, self._committed.get(room, 0)), members, history)

    async def leave(self, room: str, member: Member) -> None:
        state = self._rooms.get(room)
        entry = state.members.pop(member.id, None) if state is not None else None
        if state is None or entry is None:
            return
        nick = entry[1]
        key = nick_key(nick)
        del state.nicks[key]
        self._hold(member, key, -1)
        if not state.members:
            del self._rooms[room]
        self._announce(Event(room, "leave", nick, time.time(), member.id))

    async def rename(self, room: str, member: Member, nick: str) -> str:
        state = self._rooms.get(room)
        entry = state.members.get(member.id) if state is not None else None
        if state is None or entry is None:
            raise ChatNotJoined(f"not in {room}")
        old = entry[1]
        old_key, key = nick_key(old), nick_key(nick)
        if state.nicks.get(key, member.id) != member.id:
            raise ChatNickTaken(f"the nick {nick} is in use in {room}")
        if nick == old:
            return old
        del state.nicks[old_key]
        state.nicks[key] = member.id
        state.members[member.id] = (member, nick)
        self._hold(member, old_key, -1, user=False)
        self._hold(member, key, 1, user=False)
        self._announce(Event(room, "nick", nick, time.time(), member.id, old))
        return old

    def _hold(self, member: Member, key: str, delta: int, *, user: bool = True) -> None:
        """Count the keys a direct message can reach this connection by."""
        keys = [key]
        if user and member.user is not None:
            keys.append(nick_key(member.user))
        for k in keys:
            conns = self._holders.setdefault(k, collections.Counter())
            conns[member.conn] += delta
            if conns[member.conn] <= 0:
                del conns[member.conn]
                if not conns:
                    del self._holders[k]

    @staticmethod
    def _nicks(state: _Room) -> list[str]:
        return sorted((nick for _, nick in state.members.values()), key=lambda n: (nick_key(n), n))

    async def members(self, room: str) -> list[str]:
        state = self._rooms.get(room)
        return self._nicks(state) if state is not None else []

    async def rooms(self) -> list[tuple[str, int]]:
        return sorted((room, len(state.members)) for room, state in self._rooms.items())

    async def direct(self, dm: Direct, key: str) -> int:
        conns = self._holders.get(key)
        if not conns or self._node is None:
            return 0
        self._node.direct(dm, list(conns))
        return len(conns)

    # messages ---------------------------------------------------------------------------

    def publish(self, room: str, sender: str, text: bytes) -> Awaitable[int]:
        seq = self._seq.get(room, 0) + 1
        self._seq[room] = seq
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        pending = _Pending(Message(room, seq, sender, time.time(), text), future)
        self._queue.append(pending)
        self._unsent.append(pending)
        if self._writing is None and not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)
        return future

    def _announce(self, event: Event) -> None:
        self._queue.append(event)
        self._deliver()

    def _flush(self) -> None:
        """Hand every message gathered since the last write to the store as one batch."""
        self._flush_scheduled = False
        if self._writing is not None or not self._unsent:
            return
        batch, self._unsent = self._unsent, []
        writing = self._writing = self._store.write([p.message for p in batch])
        writing.add_done_callback(lambda done: self._written(batch, done))

    def _written(self, batch: list[_Pending], done: asyncio.Future[None]) -> None:
        self._writing = None
        exc = None if done.cancelled() else done.exception()
        if done.cancelled() or exc is not None:
            log.error("storing %d chat messages failed: %r", len(batch), exc)
            error = BackendUnavailable("the chat history cannot be written; not sent")
        for pending in batch:
            pending.stored = True
            if done.cancelled() or exc is not None:
                pending.error = error
        self._deliver()
        if self._unsent:
            self._flush()

    def _deliver(self) -> None:
        """Hand out, in order, every queued item that no unstored message holds back."""
        queue, node = self._queue, self._node
        while queue:
            head = queue[0]
            if isinstance(head, Event):
                queue.popleft()
                if node is not None:
                    node.event(head)
                continue
            if not head.stored:
                return
            queue.popleft()
            future = head.future
            if head.error is not None:
                if not future.done():
                    future.set_exception(head.error)
                continue
            msg = head.message
            self._committed[msg.room] = msg.seq
            if node is not None:
                node.deliver(msg)
            if not future.done():
                future.set_result(msg.seq)
