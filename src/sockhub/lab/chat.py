"""The course chat room (A 3.6), shared with a sockhub room when a server is at hand.

Course clients see lines exactly as the notes' servers print them; sockhub users appear
with their nick where a course client's ``ip:port`` would be, and course clients appear
in the sockhub room as ``ip:port text`` said by the lab's bridge user.
"""

from __future__ import annotations

import asyncio
import datetime
import logging

from .bridge import Bridge
from .limits import LabLimits

__all__ = ["Room"]

log = logging.getLogger("sockhub.lab")


def course_line(who: str, text: str, *, with_time: bool) -> bytes:
    """A 3.6.2 prints ``<datetime> ip:port text``; A 3.6.1 ``ip:port text``."""
    if with_time:
        return f"{datetime.datetime.now()} {who} {text}".encode()
    return f"{who} {text}".encode()


class Room:
    """Local members by writer, and an optional bridge into one sockhub room."""

    def __init__(self, with_time: bool, limits: LabLimits) -> None:
        self.with_time = with_time
        self.limits = limits
        self.members: dict[str, asyncio.StreamWriter] = {}
        self.bridge: Bridge | None = None

    def from_sockhub(self, nick: str, text: str) -> None:
        self.broadcast(course_line(nick, text, with_time=self.with_time))

    def full(self) -> bool:
        return len(self.members) >= self.limits.chat_members

    def add(self, who: str, writer: asyncio.StreamWriter) -> None:
        self.members[who] = writer

    def remove(self, who: str) -> None:
        self.members.pop(who, None)

    def said(self, who: str, text: str) -> None:
        """``who`` (a course client) said ``text``: everyone local, then the sockhub room."""
        self.broadcast(course_line(who, text, with_time=self.with_time))
        if self.bridge is not None and not self.bridge.send(f"{who} {text}"):
            log.warning(
                "chat bridge: the sockhub backlog is full (bridge_backlog %d); %s's message stays local",
                self.limits.bridge_backlog,
                who,
            )

    def broadcast(self, line: bytes) -> None:
        most = self.limits.chat_backlog
        for who, writer in list(self.members.items()):
            if writer.transport.get_write_buffer_size() > most:
                log.warning("chat: %s stopped reading; dropped after %d bytes waited", who, most)
                self.remove(who)
                writer.transport.abort()
                continue
            writer.write(line)

    async def close(self) -> None:
        if self.bridge is not None:
            await self.bridge.close()
