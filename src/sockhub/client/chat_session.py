"""Chat that survives a dropped connection: reconnect, rejoin with ``since``, no repeats.

``ChatState`` (no I/O) remembers each room's nick and the last ``seq`` seen, and drops
anything at or below it. ``session_events`` is the reading and reconnecting, written
once as a plan of ``Do`` steps; ``AsyncChatSession`` and ``ChatSession`` are thin
drivers that carry the steps out, awaited or not. Rejoining with ``since`` gets exactly the messages missed while away
(within the history the server keeps), so nothing is missed or shown twice.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from ..protocol.errors import AuthFailed, ProtocolError
from .aio import AsyncClient
from .chat import ChatEvent, ChatMessage, Joined
from .errors import ConnectionClosed, QueueFull
from .sync import Client

__all__ = ["AsyncChatSession", "ChatSession", "ChatState", "Incoming", "Notice"]

RETRY_DELAYS = (0.0, 0.5, 1.0, 2.0, 5.0, 10.0)
"""Seconds to wait before each reconnect attempt; the last one repeats."""

_DROPPED = (ConnectionError, ProtocolError, OSError, QueueFull)
"""What makes a session reconnect (``QueueFull``: pushes were lost; a rejoin with
``since`` fetches them again)."""


@dataclass(frozen=True, slots=True)
class Notice:
    """News about the connection itself: ``disconnected``, ``retrying``, ``reconnected``,
    or ``lost_room`` (a room that could not be rejoined)."""

    kind: str
    text: str


Incoming = ChatMessage | ChatEvent | Notice


@dataclass(slots=True)
class _Room:
    nick: str
    seq: int


class ChatState:
    """Rooms, nicks and the last ``seq`` seen in each: what a rejoin needs."""

    def __init__(self) -> None:
        self.rooms: dict[str, _Room] = {}

    def joined(self, joined: Joined) -> list[ChatMessage]:
        """Record a join; the history messages not seen before, in order."""
        known = self.rooms.get(joined.room)
        last = known.seq if known is not None and joined.seq >= known.seq else 0
        self.rooms[joined.room] = _Room(joined.nick, joined.seq)
        return [m for m in joined.history if m.seq is None or m.seq > last]

    def left(self, room: str) -> None:
        self.rooms.pop(room, None)

    def renamed(self, room: str, nick: str) -> None:
        if room in self.rooms:
            self.rooms[room].nick = nick

    def accept(self, item: ChatMessage | ChatEvent) -> bool:
        """False for what is not ours to show: repeats, and rooms we are not in."""
        if isinstance(item, ChatEvent):
            return item.room in self.rooms
        if item.dm:
            return True
        room = self.rooms.get(item.room or "")
        if room is None:
            return False
        if item.seq is not None:
            if item.seq <= room.seq:
                return False
            room.seq = item.seq
        return True

    def to_rejoin(self) -> list[tuple[str, str, int]]:
        """(room, nick, since) for every room, to join again on a new connection."""
        return [(name, r.nick, r.seq) for name, r in self.rooms.items()]

    def lost(self, room: str, exc: BaseException) -> Notice:
        self.left(room)
        return Notice("lost_room", f"could not rejoin {room}: {exc}")


def _delays(delays: Iterable[float]) -> Iterator[float]:
    steps = list(delays) or [1.0]
    return itertools.chain(steps, itertools.repeat(steps[-1]))


def _retry_notice(exc: BaseException) -> Notice:
    return Notice("retrying", f"cannot reconnect yet: {exc}")


def _reconnected(rooms: Iterable[str]) -> Notice:
    names = ", ".join(rooms)
    return Notice("reconnected", f"reconnected{'; rejoined ' + names if names else ''}")


C = TypeVar("C", AsyncClient, Client)


@dataclass(frozen=True, slots=True)
class Do:
    """A call a plan asks its driver to make: on the session's client, or the session."""

    name: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    on_session: bool = False

    def bind(self, session: _Session[Any]) -> Callable[[], Any]:
        target = session if self.on_session else session.client
        return functools.partial(getattr(target, self.name), *self.args, **self.kwargs)


@dataclass(frozen=True, slots=True)
class Outcome:
    value: Any = None
    error: Exception | None = None


Plan = Generator["Do | Incoming", Any, None]


def advance(plan: Plan, outcome: Outcome | None) -> Do | Incoming | None:
    """The plan's next step after ``outcome`` (a call's result or error); None at its end."""
    try:
        if outcome is not None and outcome.error is not None:
            return plan.throw(outcome.error)
        return plan.send(None if outcome is None else outcome.value)
    except StopIteration:
        return None


def attempt(call: Callable[[], Any]) -> Outcome:
    try:
        return Outcome(call())
    except Exception as exc:
        return Outcome(error=exc)


async def attempt_async(call: Callable[[], Awaitable[Any]]) -> Outcome:
    try:
        return Outcome(await call())
    except Exception as exc:
        return Outcome(error=exc)


def session_events(session: _Session[Any], timeout: float | None) -> Plan:
    """What both sessions' ``events`` do, written once: read chat, and after a drop
    reconnect and rejoin with ``since``. The drivers only carry out the ``Do`` steps."""
    while not session.closing:
        try:
            item = yield Do("next_chat", (timeout,))
        except TimeoutError:
            return
        except _DROPPED as exc:
            if session.closing:
                return
            yield Notice("disconnected", f"disconnected: {exc}")
            yield from _reconnect(session)
            continue
        if session.state.accept(item):
            yield item


def _reconnect(session: _Session[Any]) -> Plan:
    for delay in _delays(session.retry_delays):
        yield Do("pause", (delay,), on_session=True)
        if session.closing:
            return
        try:
            yield Do("replace", on_session=True)
            rooms = session.state.to_rejoin()
            for room, nick, since in rooms:
                try:
                    joined = yield Do("join", (room, nick), {"since": since})
                except ProtocolError as exc:
                    if exc.fatal:
                        raise
                    yield session.state.lost(room, exc)
                    continue
                yield from session.state.joined(joined)
        except AuthFailed:
            raise  # the key no longer works: retrying cannot help
        except _DROPPED as exc:
            yield _retry_notice(exc)
            continue
        yield _reconnected(room for room, _, _ in rooms if room in session.state.rooms)
        return


class _Session(Generic[C]):
    """What both sessions keep: where to connect, how, the state, the current client.

    The keyword arguments are those of ``AsyncClient.connect`` / ``Client.connect``.
    """

    def __init__(
        self,
        server: str | None = None,
        *,
        retry_delays: Iterable[float] = RETRY_DELAYS,
        **connect: Any,
    ) -> None:
        self.server = server
        self.retry_delays = tuple(retry_delays)
        self._connect = connect
        self.state = ChatState()
        self._client: C | None = None
        self.closing = False

    @property
    def client(self) -> C:
        """The current connection (a new one after each reconnect); other ops go here."""
        if self._client is None:
            raise ConnectionClosed("not connected")
        return self._client


class AsyncChatSession(_Session[AsyncClient]):
    """An ``AsyncClient`` for chat that reconnects by itself while ``events`` is iterated."""

    async def connect(self) -> AsyncChatSession:
        self._client = await AsyncClient.connect(self.server, **self._connect)
        return self

    async def replace(self) -> None:
        if self._client is not None:
            self._client.abort()
        await self.connect()

    async def pause(self, delay: float) -> None:
        await asyncio.sleep(delay)

    async def join(self, room: str, nick: str | None = None, *, history: int = 0) -> Joined:
        joined = await self.client.join(room, nick, history=history)
        self.state.joined(joined)
        return joined

    async def leave(self, room: str) -> None:
        await self.client.leave(room)
        self.state.left(room)

    async def nick(self, room: str, nick: str) -> None:
        await self.client.nick(room, nick)
        self.state.renamed(room, nick)

    async def say(self, room: str, text: str | bytes) -> int:
        return await self.client.say(room, text)

    async def events(self) -> AsyncIterator[Incoming]:
        """Messages, events and ``Notice``s, reconnecting whenever the connection drops."""
        plan = session_events(self, None)
        outcome = None
        while (step := advance(plan, outcome)) is not None:
            if isinstance(step, Do):
                outcome = await attempt_async(step.bind(self))
            else:
                yield step
                outcome = None

    async def close(self) -> None:
        self.closing = True
        if self._client is not None:
            await self._client.close()


class ChatSession(_Session[Client]):
    """A blocking ``Client`` for chat that reconnects by itself while ``events`` is iterated."""

    def connect(self) -> ChatSession:
        self._client = Client.connect(self.server, **self._connect)
        return self

    def replace(self) -> None:
        if self._client is not None:
            self._client.abort()
        self.connect()

    def pause(self, delay: float) -> None:
        time.sleep(delay)

    def join(self, room: str, nick: str | None = None, *, history: int = 0) -> Joined:
        joined = self.client.join(room, nick, history=history)
        self.state.joined(joined)
        return joined

    def leave(self, room: str) -> None:
        self.client.leave(room)
        self.state.left(room)

    def nick(self, room: str, nick: str) -> None:
        self.client.nick(room, nick)
        self.state.renamed(room, nick)

    def say(self, room: str, text: str | bytes) -> int:
        return self.client.say(room, text)

    def events(self, timeout: float | None = None) -> Iterator[Incoming]:
        """Like the async ``events``; ends after ``timeout`` seconds without anything."""
        plan = session_events(self, timeout)
        outcome = None
        while (step := advance(plan, outcome)) is not None:
            if isinstance(step, Do):
                outcome = attempt(step.bind(self))
            else:
                yield step
                outcome = None

    def close(self) -> None:
        self.closing = True
        if self._client is not None:
            self._client.close()

    def __enter__(self) -> ChatSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
