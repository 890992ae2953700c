"""The course chat room (A 3.6), shared with a sockhub room when a server is at hand.

Course clients see lines exactly as the notes' servers print them; sockhub users appear
with their nick where a course client's ``ip:port`` would be, and course clients appear
in the sockhub room as ``ip:port text`` said by the lab's bridge user.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging

from ..client import AsyncClient, ConnectionClosed
from ..client.chat import ChatMessage
from ..protocol.errors import ProtocolError

__all__ = ["MAX_MEMBERS", "Room"]

log = logging.getLogger("sockhub.lab")

MAX_MEMBERS = 64
BRIDGE_NICK = "course-lab"
# a course client that stops reading is dropped once this much waits for it
MAX_BACKLOG = 256 * 1024


def course_line(who: str, text: str, *, with_time: bool) -> bytes:
    """A 3.6.2 prints ``<datetime> ip:port text``; A 3.6.1 ``ip:port text``."""
    if with_time:
        return f"{datetime.datetime.now()} {who} {text}".encode()
    return f"{who} {text}".encode()


class Room:
    """Local members by writer, and an optional bridge into one sockhub room."""

    def __init__(self, with_time: bool) -> None:
        self.with_time = with_time
        self.members: dict[str, asyncio.StreamWriter] = {}
        self.bridge: AsyncClient | None = None
        self.room_name = ""
        self.bridge_nick = ""
        self._pump: asyncio.Task[None] | None = None

    async def open_bridge(self, client: AsyncClient, room: str) -> None:
        try:
            joined = await client.join(room, BRIDGE_NICK, history=0)
        except (ProtocolError, ConnectionClosed, ConnectionError) as exc:
            log.warning(
                "chat bridge: cannot join sockhub room %r (%s); room is local only", room, exc
            )
            return
        self.bridge, self.room_name, self.bridge_nick = client, room, joined.nick
        self._pump = asyncio.get_running_loop().create_task(self._from_sockhub())
        log.info("chat bridge: course chat shares sockhub room %r as %s", room, joined.nick)

    async def _from_sockhub(self) -> None:
        assert self.bridge is not None
        async for item in self.bridge.chat_events():
            if not isinstance(item, ChatMessage) or item.room != self.room_name:
                continue
            if item.sender != self.bridge_nick:
                self.broadcast(course_line(item.sender, item.text, with_time=self.with_time))
        log.warning("chat bridge: the sockhub server closed the bridge; room is local only")
        self.bridge = None

    def full(self) -> bool:
        return len(self.members) >= MAX_MEMBERS

    def add(self, who: str, writer: asyncio.StreamWriter) -> None:
        self.members[who] = writer

    def remove(self, who: str) -> None:
        self.members.pop(who, None)

    async def said(self, who: str, text: str) -> None:
        """``who`` (a course client) said ``text``: everyone local, then the sockhub room."""
        self.broadcast(course_line(who, text, with_time=self.with_time))
        if self.bridge is not None:
            try:
                await self.bridge.say(self.room_name, f"{who} {text}")
            except (ProtocolError, ConnectionClosed, ConnectionError) as exc:
                log.warning("chat bridge: sockhub refused %s's message: %s", who, exc)

    def broadcast(self, line: bytes) -> None:
        for who, writer in list(self.members.items()):
            if writer.transport.get_write_buffer_size() > MAX_BACKLOG:
                log.warning(
                    "chat: %s stopped reading; dropped after %d bytes waited", who, MAX_BACKLOG
                )
                self.remove(who)
                writer.transport.abort()
                continue
            writer.write(line)

    async def close(self) -> None:
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump
