"""The local side of fan-out: this process's members, each frame encoded once.

The broker hands over each batch of messages once; each message is encoded once, a
room's messages of the batch are joined, and the same bytes are queued on every local
member's connection (one append per member per batch, not per message), which writes
everything queued during an event-loop turn in one call. Nothing here waits for a
member: one whose backlog stays too large is cut off by its session
(``limit.slow_consumer``, see the output limits) and leaves. What arrives while a
member's history is replayed waits in its buffer, bounded by the same hard limit.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Sequence
from typing import Any

from ...protocol.errors import LimitSlowConsumer
from ...protocol.frames import encode_frame
from ...server.service import Session
from .broker import ChatNode, Direct, Event, Joined, Member, Message

__all__ = ["LocalNode", "Membership", "history_header"]


class Membership:
    """One connection in one room, as this process sees it.

    Until the join is answered, deliveries wait in ``buffer`` (history and the reply go
    first); afterwards only messages above ``floor`` (the ``seq`` the reply named) go out.
    """

    __slots__ = (
        "buffer",
        "buffered",
        "floor",
        "joining",
        "member",
        "nick",
        "queued",
        "room",
        "session",
    )

    def __init__(self, session: Session, room: str, member: Member, nick: str) -> None:
        self.session = session
        self.room = room
        self.member = member
        self.nick = nick
        self.floor = 0
        self.buffer: list[tuple[int | None, bytes]] | None = []
        self.buffered = 0
        self.joining: asyncio.Task[Joined] | None = None
        self.queued: list[tuple[bytes, asyncio.Future[int]]] = []
        """Messages said before the join was answered (text, the sender's answer):
        published, in order, the moment it is."""

    @property
    def live(self) -> bool:
        return self.buffer is None and not self.queued


def msg_header(msg: Message) -> dict[str, Any]:
    return {"op": "chat.msg", "room": msg.room, "from": msg.sender, "seq": msg.seq, "ts": msg.ts}


def history_header(msg: Message) -> dict[str, Any]:
    return {**msg_header(msg), "history": True}


class LocalNode(ChatNode):
    """Every local membership by room, and every chatting connection by id (for DMs)."""

    def __init__(self) -> None:
        self.buffer_max = 32 << 20
        """Bytes a joining member may have waiting behind its history replay."""
        self._rooms: dict[str, dict[str, Membership]] = {}
        self._fanout: dict[str, tuple[Membership, ...]] = {}
        self.sessions: dict[str, Session] = {}

    def add(self, m: Membership) -> None:
        self._rooms.setdefault(m.room, {})[m.member.id] = m
        self._fanout.pop(m.room, None)

    def remove(self, m: Membership) -> None:
        members = self._rooms.get(m.room)
        if members is not None and members.pop(m.member.id, None) is not None:
            self._fanout.pop(m.room, None)
            if not members:
                del self._rooms[m.room]

    def _members(self, room: str) -> tuple[Membership, ...]:
        """A snapshot, so a member cut off in the middle of a fan-out cannot upset it."""
        members = self._fanout.get(room)
        if members is None:
            members = self._fanout[room] = tuple(self._rooms.get(room, {}).values())
        return members

    def go_live(self, m: Membership, floor: int) -> None:
        """The join was answered: send what arrived meanwhile, newer than ``floor``."""
        buffer, m.buffer = m.buffer, None
        m.floor = floor
        for seq, frame in buffer or ():
            if seq is None or seq > floor:
                m.session.send_raw(frame)

    def deliver(self, batch: Sequence[Message]) -> None:
        """Each room's part of the batch goes to each member as one piece of bytes."""
        by_room: dict[str, list[Message]] = {}
        for msg in batch:
            by_room.setdefault(msg.room, []).append(msg)
        for room, msgs in by_room.items():
            members = self._members(room)
            if not members:
                continue
            frames = [encode_frame(msg_header(msg), msg.text) for msg in msgs]
            joined = frames[0] if len(frames) == 1 else b"".join(frames)
            first = msgs[0].seq
            for m in members:
                if m.buffer is None and m.floor < first:
                    m.session.send_raw(joined)
                else:
                    self._filtered(m, msgs, frames)

    def _hold(self, m: Membership, seq: int | None, frame: bytes) -> None:
        """Keep ``frame`` for a member whose join is being answered, within bounds."""
        assert m.buffer is not None
        m.buffered += len(frame)
        if m.buffered > self.buffer_max:
            m.session.close(LimitSlowConsumer("too much arrived while your history was sent"))
            return
        m.buffer.append((seq, frame))

    def _filtered(self, m: Membership, msgs: list[Message], frames: list[bytes]) -> None:
        """A member still joining, or just joined: buffer, or drop what it has seen."""
        for msg, frame in zip(msgs, frames, strict=True):
            if m.buffer is not None:
                self._hold(m, msg.seq, frame)
            elif msg.seq > m.floor:
                m.session.send_raw(frame)

    def event(self, event: Event) -> None:
        members = self._members(event.room)
        if not members:
            return
        header: dict[str, Any] = {
            "op": "chat.event",
            "room": event.room,
            "event": event.kind,
            "nick": event.nick,
        }
        if event.old is not None:
            header["old"] = event.old
        header["ts"] = event.ts
        frame = encode_frame(header)
        for m in members:
            if m.member.id == event.actor:
                continue
            if m.buffer is not None:
                self._hold(m, None, frame)
            else:
                m.session.send_raw(frame)

    def direct(self, dm: Direct, conns: Collection[str]) -> None:
        header = {"op": "chat.msg", "dm": True, "to": dm.to, "from": dm.sender, "ts": dm.ts}
        frame = encode_frame(header, dm.text)
        for conn in conns:
            session = self.sessions.get(conn)
            if session is not None:
                session.send_raw(frame)
