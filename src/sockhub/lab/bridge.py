"""The course chat room's link to one sockhub room, kept across server restarts.

sockhub's reconnecting chat session rejoins with ``since``, so what sockhub users said
while the link was down arrives once, in order. What course clients say meanwhile waits
(bounded) and is said when the link is back, in the order it was said.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from ..client.chat import ChatMessage
from ..client.chat_session import AsyncChatSession, Notice
from ..protocol.errors import ProtocolError

__all__ = ["BRIDGE_NICK", "Bridge"]

log = logging.getLogger("sockhub.lab")

BRIDGE_NICK = "course-lab"
_DROPPED = (ConnectionError, ProtocolError, OSError)


class Bridge:
    """One sockhub room seen from the course room: ``deliver(nick, text)`` for what its
    users say, ``send(text)`` for what course clients say."""

    def __init__(
        self,
        session: AsyncChatSession,
        room: str,
        deliver: Callable[[str, str], None],
        backlog: int,
    ) -> None:
        self.session = session
        self.room = room
        self._deliver = deliver
        self._outbox: asyncio.Queue[str] = asyncio.Queue(backlog)
        self._changed = asyncio.Condition()
        self._up = True
        self._generation = 0
        """How many times the session reconnected: a message that failed is said again only
        on a later connection, once it has rejoined."""
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> str:
        """Join the room (ProtocolError when refused) and start relaying; our nick."""
        joined = await self.session.join(self.room, BRIDGE_NICK, history=0)
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._pump()), loop.create_task(self._sender())]
        return joined.nick

    def _nick(self) -> str:
        room = self.session.state.rooms.get(self.room)
        return room.nick if room is not None else BRIDGE_NICK

    def send(self, text: str) -> bool:
        """Queue ``text`` for the sockhub room; False when the backlog is full."""
        try:
            self._outbox.put_nowait(text)
        except asyncio.QueueFull:
            return False
        return True

    async def _pump(self) -> None:
        try:
            await self._relay()
        except _DROPPED as exc:
            log.warning("chat bridge (%s) ended: %s; the course room is local only", self.room, exc)

    async def _relay(self) -> None:
        async for item in self.session.events():
            if isinstance(item, Notice):
                level = logging.INFO if item.kind == "retrying" else logging.WARNING
                log.log(level, "chat bridge (%s): %s", self.room, item.text)
                if item.kind in ("disconnected", "reconnected"):
                    async with self._changed:
                        self._up = item.kind == "reconnected"
                        self._generation += self._up
                        self._changed.notify_all()
            elif (
                isinstance(item, ChatMessage)
                and item.room == self.room
                and item.sender != self._nick()
            ):
                self._deliver(item.sender, item.text)

    async def _up_since(self, generation: int) -> int:
        """Until the link is up on connection ``generation`` or a later one; which one."""
        async with self._changed:
            await self._changed.wait_for(lambda: self._up and self._generation >= generation)
            return self._generation

    async def _sender(self) -> None:
        while True:
            text = await self._outbox.get()
            generation = await self._up_since(0)
            while True:
                try:
                    await self.session.say(self.room, text)
                    break
                except _DROPPED as exc:
                    if isinstance(exc, ProtocolError) and not exc.fatal:
                        log.warning("chat bridge: sockhub refused a message: %s", exc)
                        break
                    # said again once the session has reconnected and rejoined, never before
                    generation = await self._up_since(generation + 1)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        with contextlib.suppress(Exception):
            await self.session.close()
