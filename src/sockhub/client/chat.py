"""Chat (PROTOCOL.md section 6) on both clients: ``ChatMixin`` and ``AsyncChatMixin``.

Requests are built and replies read here once; each client method is a thin shell
around them. A server is not trusted to follow the rules: every field of a push is
read defensively, and text is decoded with replacement, never raised on.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from .common import Reply, as_bytes

if TYPE_CHECKING:
    import asyncio

    from .aio import Chunk

__all__ = [
    "AsyncChatMixin",
    "ChatEvent",
    "ChatMessage",
    "ChatMixin",
    "History",
    "Joined",
    "RoomInfo",
    "parse_push",
]

HISTORY_OPS = ("chat.msg",)
HISTORY_LIMIT = 50
"""Messages a ``history()`` call asks for unless told (the server allows up to its
``chat_history_max_join``)."""


def _str(header: dict[str, Any], key: str, default: str = "") -> str:
    value = header.get(key, default)
    return value if isinstance(value, str) else default


def _int(header: dict[str, Any], key: str) -> int | None:
    value = header.get(key)
    return value if value.__class__ is int else None


def _float(header: dict[str, Any], key: str) -> float:
    value = header.get(key)
    return float(value) if value.__class__ in (int, float) else 0.0


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """A room message (``room`` set, ``seq`` set) or a direct message (``dm``, ``to``)."""

    room: str | None
    sender: str
    text: str
    ts: float
    seq: int | None = None
    dm: bool = False
    to: str | None = None
    history: bool = False

    @classmethod
    def from_reply(cls, reply: Reply) -> ChatMessage:
        h = reply.header
        dm = h.get("dm") is True
        return cls(
            room=None if dm else _str(h, "room"),
            sender=_str(h, "from", "?"),
            text=reply.body.decode("utf-8", "replace"),
            ts=_float(h, "ts"),
            seq=_int(h, "seq"),
            dm=dm,
            to=_str(h, "to") if dm else None,
            history=h.get("history") is True,
        )


@dataclass(frozen=True, slots=True)
class ChatEvent:
    """Someone else joined, left, or changed nick (``old`` holds the previous one)."""

    room: str
    event: str
    nick: str
    ts: float
    old: str | None = None

    @classmethod
    def from_reply(cls, reply: Reply) -> ChatEvent:
        h = reply.header
        old = h.get("old")
        return cls(
            _str(h, "room"),
            _str(h, "event"),
            _str(h, "nick", "?"),
            _float(h, "ts"),
            old if isinstance(old, str) else None,
        )


@dataclass(frozen=True, slots=True)
class Joined:
    """The answer to a join: who is there, the room's latest ``seq``, and the history.

    ``members_more`` is True only in the server's reply itself, when a big room's member
    list did not fit one header; ``join()`` then gathers the rest with ``chat.who``."""

    room: str
    nick: str
    members: list[str]
    seq: int
    history: list[ChatMessage] = field(default_factory=list)
    members_more: bool = False

    def with_rest(self, rest: list[str]) -> Joined:
        return replace(self, members=[*self.members, *rest], members_more=False)

    @classmethod
    def from_replies(cls, replies: Iterable[Reply | Chunk]) -> Joined:
        history, reply = _replayed(replies, "join")
        h = reply.header
        members = h.get("members")
        return cls(
            _str(h, "room"),
            _str(h, "nick"),
            [m for m in members if isinstance(m, str)] if isinstance(members, list) else [],
            _int(h, "seq") or 0,
            history,
            h.get("members_more") is True,
        )


@dataclass(frozen=True, slots=True)
class History:
    """A page of scroll-back (``chat.history``): messages oldest first, and whether the
    server keeps older ones (ask again with ``before`` = the first message's ``seq``)."""

    room: str
    messages: list[ChatMessage]
    more: bool

    @property
    def before(self) -> int | None:
        """The ``before`` of the next older page; None when there is none."""
        first = self.messages[0].seq if self.messages else None
        return first if self.more else None

    @classmethod
    def from_replies(cls, replies: Iterable[Reply | Chunk]) -> History:
        messages, reply = _replayed(replies, "history")
        return cls(_str(reply.header, "room"), messages, reply.header.get("more") is True)


def _replayed(replies: Iterable[Reply | Chunk], what: str) -> tuple[list[ChatMessage], Reply]:
    """The ``chat.msg`` frames replayed before a final reply, and that reply."""
    messages: list[ChatMessage] = []
    for reply in replies:
        if not isinstance(reply, Reply):
            continue
        if reply.op != "chat.msg":
            return messages, reply
        messages.append(ChatMessage.from_reply(reply))
    raise ValueError(f"the {what} ended without its reply")


@dataclass(frozen=True, slots=True)
class RoomInfo:
    room: str
    members: int


def parse_push(reply: Reply) -> ChatMessage | ChatEvent | None:
    """The chat meaning of a pushed frame; None for a push of another service."""
    if reply.op == "chat.msg":
        return ChatMessage.from_reply(reply)
    if reply.op == "chat.event":
        return ChatEvent.from_reply(reply)
    return None


def join_fields(nick: str | None, history: int, since: int | None) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if nick is not None:
        fields["nick"] = nick
    if since is not None:
        fields["since"] = since
    elif history:
        fields["history"] = history
    return fields


def history_fields(room: str, before: int | None, limit: int) -> dict[str, Any]:
    fields: dict[str, Any] = {"room": room, "limit": limit}
    if before is not None:
        fields["before"] = before
    return fields


def say_fields(room: str, nick: str | None) -> dict[str, Any]:
    return {"room": room} if nick is None else {"room": room, "nick": nick}


def said_seq(reply: Reply) -> int:
    return _int(reply.header, "seq") or 0


def next_after(reply: Reply, last: str | None) -> str | None:
    """The cursor for the next page of a paged reply (PROTOCOL.md section 6), or None."""
    return last if reply.header.get("more") is True and last else None


def who_members(reply: Reply) -> list[str]:
    members = reply.header.get("members")
    return [m for m in members if isinstance(m, str)] if isinstance(members, list) else []


def room_list(reply: Reply) -> list[RoomInfo]:
    rooms = reply.header.get("rooms")
    return [
        RoomInfo(_str(r, "room"), _int(r, "members") or 0)
        for r in (rooms if isinstance(rooms, list) else [])
        if isinstance(r, dict)
    ]


class ChatMixin:
    """Chat ops for the blocking ``Client``."""

    if TYPE_CHECKING:

        def request(self, op: str, body: bytes = b"", **fields: Any) -> Reply: ...

        def stream(
            self, op: str, body: bytes = b"", *, partial: Iterable[str], **fields: Any
        ) -> Iterator[Reply | Chunk]: ...

        def next_push(self, timeout: float | None = None) -> Reply: ...

    def join(
        self, room: str, nick: str | None = None, *, history: int = 0, since: int | None = None
    ) -> Joined:
        """Join ``room`` (created if new); ``since`` replays every kept message after it."""
        fields = join_fields(nick, history, since)
        joined = Joined.from_replies(
            self.stream("chat.join", partial=HISTORY_OPS, room=room, **fields)
        )
        if joined.members_more and joined.members:
            return joined.with_rest(self.who(room, after=joined.members[-1]))
        return joined

    def history(
        self, room: str, *, before: int | None = None, limit: int = HISTORY_LIMIT
    ) -> History:
        """Scroll-back: the ``limit`` latest kept messages of ``room`` below ``before``
        (default: the latest), oldest first; joining the room is not needed."""
        fields = history_fields(room, before, limit)
        return History.from_replies(self.stream("chat.history", partial=HISTORY_OPS, **fields))

    def say(self, room: str, text: str | bytes, *, nick: str | None = None) -> int:
        """Send to ``room``; returns the message's ``seq`` once the server has stored it.

        With ``nick``, speak in a room this connection has not joined, unannounced."""
        fields = say_fields(room, nick)
        return said_seq(self.request("chat.say", as_bytes(text), **fields))

    def dm(self, to: str, text: str | bytes) -> None:
        self.request("chat.dm", as_bytes(text), to=to)

    def leave(self, room: str) -> None:
        self.request("chat.leave", room=room)

    def nick(self, room: str, nick: str) -> None:
        self.request("chat.nick", room=room, nick=nick)

    def who(self, room: str, *, after: str = "") -> list[str]:
        """The room's members sorted by nick (those after ``after``), every page of them."""
        members: list[str] = []
        cursor: str | None = after
        while cursor is not None:
            reply = self.request("chat.who", room=room, after=cursor)
            members += who_members(reply)
            cursor = next_after(reply, members[-1] if members else None)
        return members

    def rooms(self) -> list[RoomInfo]:
        rooms: list[RoomInfo] = []
        after: str | None = ""
        while after is not None:
            reply = self.request("chat.rooms", after=after)
            rooms += room_list(reply)
            after = next_after(reply, rooms[-1].room if rooms else None)
        return rooms

    def next_chat(self, timeout: float | None = None) -> ChatMessage | ChatEvent:
        """The next message or event; ``TimeoutError`` after ``timeout`` seconds."""
        while True:
            item = parse_push(self.next_push(timeout))
            if item is not None:
                return item

    def chat_events(self, timeout: float | None = None) -> Iterator[ChatMessage | ChatEvent]:
        """Messages and events as they come; ends after ``timeout`` seconds of silence."""
        while True:
            try:
                yield self.next_chat(timeout)
            except TimeoutError:
                return


class AsyncChatMixin:
    """Chat ops for the asyncio ``AsyncClient``."""

    if TYPE_CHECKING:

        def request(self, op: str, body: bytes = b"", **fields: Any) -> asyncio.Future[Reply]: ...

        def stream(
            self, op: str, body: bytes = b"", *, partial: Iterable[str], **fields: Any
        ) -> AsyncIterator[Reply | Chunk]: ...

        async def next_push(self, timeout: float | None = None) -> Reply: ...

    async def join(
        self, room: str, nick: str | None = None, *, history: int = 0, since: int | None = None
    ) -> Joined:
        """Join ``room`` (created if new); ``since`` replays every kept message after it."""
        fields = join_fields(nick, history, since)
        replies = self.stream("chat.join", partial=HISTORY_OPS, room=room, **fields)
        joined = Joined.from_replies([reply async for reply in replies])
        if joined.members_more and joined.members:
            return joined.with_rest(await self.who(room, after=joined.members[-1]))
        return joined

    async def history(
        self, room: str, *, before: int | None = None, limit: int = HISTORY_LIMIT
    ) -> History:
        """Scroll-back: the ``limit`` latest kept messages of ``room`` below ``before``
        (default: the latest), oldest first; joining the room is not needed."""
        fields = history_fields(room, before, limit)
        replies = self.stream("chat.history", partial=HISTORY_OPS, **fields)
        return History.from_replies([reply async for reply in replies])

    async def say(self, room: str, text: str | bytes, *, nick: str | None = None) -> int:
        """Send to ``room``; returns the message's ``seq`` once the server has stored it.

        With ``nick``, speak in a room this connection has not joined, unannounced."""
        fields = say_fields(room, nick)
        return said_seq(await self.request("chat.say", as_bytes(text), **fields))

    async def dm(self, to: str, text: str | bytes) -> None:
        await self.request("chat.dm", as_bytes(text), to=to)

    async def leave(self, room: str) -> None:
        await self.request("chat.leave", room=room)

    async def nick(self, room: str, nick: str) -> None:
        await self.request("chat.nick", room=room, nick=nick)

    async def who(self, room: str, *, after: str = "") -> list[str]:
        """The room's members sorted by nick (those after ``after``), every page of them."""
        members: list[str] = []
        cursor: str | None = after
        while cursor is not None:
            reply = await self.request("chat.who", room=room, after=cursor)
            members += who_members(reply)
            cursor = next_after(reply, members[-1] if members else None)
        return members

    async def rooms(self) -> list[RoomInfo]:
        rooms: list[RoomInfo] = []
        after: str | None = ""
        while after is not None:
            reply = await self.request("chat.rooms", after=after)
            rooms += room_list(reply)
            after = next_after(reply, rooms[-1].room if rooms else None)
        return rooms

    async def next_chat(self, timeout: float | None = None) -> ChatMessage | ChatEvent:
        """The next message or event; ``TimeoutError`` after ``timeout`` seconds."""
        while True:
            item = parse_push(await self.next_push(timeout))
            if item is not None:
                return item

    async def chat_events(self) -> AsyncIterator[ChatMessage | ChatEvent]:
        """Messages and events until the connection closes."""
        while True:
            try:
                yield await self.next_chat()
            except ConnectionError:
                return
