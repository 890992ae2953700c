"""The broker interface: who is in which room, the order of every room, its history.

The chat service talks only to this interface, so the in-process broker
(``memory.MemoryBroker``) can be replaced by one that spans processes (Redis) without
touching the service. What every implementation promises:

- ``seq`` is assigned per room, strictly increasing (gaps allowed), and never handed
  out twice, not even across a crash; ``publish`` resolves only once it is stored.
- Every node receives a room's messages and events in one order, the same for all
  nodes, so every member of a room sees the same order.
- Nick claims are atomic across nodes: two members of a room never hold one nick key.
- ``join`` returns a ``seq`` such that the history it returns plus every message the
  node is handed with a larger ``seq`` is exactly what the member has to see; the node
  drops deliveries at or below it (``LocalNode`` does), so a join never misses or repeats.

A node is one server process: the broker hands its ``ChatNode`` each batch of stored
messages once (not once per member); the node encodes each frame once and queues the
same bytes to every local member.
"""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Protocol

__all__ = [
    "BrokerUnreachable",
    "ChatBroker",
    "ChatNode",
    "Direct",
    "Event",
    "History",
    "Joined",
    "Member",
    "Message",
]


class BrokerUnreachable(RuntimeError):
    """The broker's backend cannot be reached at start; the message says where."""


@dataclass(frozen=True, slots=True)
class Message:
    """One room message as stored and delivered; ``text`` is the UTF-8 body."""

    room: str
    seq: int
    sender: str
    ts: float
    text: bytes


@dataclass(frozen=True, slots=True)
class Event:
    """A join, leave or nick change; ``actor`` (a member id) does not receive it."""

    room: str
    kind: str
    nick: str
    ts: float
    actor: str
    old: str | None = None


@dataclass(frozen=True, slots=True)
class Direct:
    """A direct message; ``to`` is the name as the sender wrote it."""

    to: str
    sender: str
    ts: float
    text: bytes


@dataclass(frozen=True, slots=True)
class Member:
    """One connection's membership of one room; ``id`` is unique across nodes and time."""

    id: str
    conn: str
    user: str | None


@dataclass(frozen=True, slots=True)
class Joined:
    seq: int
    members: list[str]
    history: list[Message] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class History:
    """A page of scroll-back: kept messages oldest first; ``more`` when older ones are kept."""

    messages: list[Message]
    more: bool


class ChatNode(Protocol):
    """What a broker hands deliveries to: the local side of one server process."""

    def deliver(self, batch: Sequence[Message]) -> None:
        """Stored messages, in ``seq`` order within each room."""

    def event(self, event: Event) -> None: ...

    def direct(self, dm: Direct, conns: Collection[str]) -> None:
        """Deliver ``dm`` to these local connections (ids from ``Member.conn``)."""


class ChatBroker(abc.ABC):
    """Presence, ordering, history and cross-node fan-out of the chat service."""

    @abc.abstractmethod
    async def start(self, node: ChatNode) -> None:
        """Open storage and connections; deliveries go to ``node`` from now on."""

    @abc.abstractmethod
    async def stop(self) -> None:
        """Finish storing what was published, then release everything."""

    @abc.abstractmethod
    async def join(
        self, room: str, member: Member, nick: str, *, since: int | None, count: int
    ) -> Joined:
        """Claim ``nick`` in ``room`` (``ChatNickTaken`` if held), announce the join, and
        return the history: every kept message after ``since``, else the ``count`` latest."""

    @abc.abstractmethod
    async def history(self, room: str, before: int | None, limit: int) -> History:
        """The ``limit`` latest kept messages of ``room`` with ``seq`` below ``before`` (no
        bound when None), oldest first; a room nobody used has none. Membership is not
        needed: the same messages are what a join would replay."""

    @abc.abstractmethod
    async def leave(self, room: str, member: Member) -> None:
        """Release the member's nick and announce the leave; a no-op when not a member."""

    @abc.abstractmethod
    async def rename(self, room: str, member: Member, nick: str) -> str:
        """Move the member to ``nick`` (``ChatNickTaken`` if held), announce it; the old nick."""

    @abc.abstractmethod
    def publish(
        self, room: str, sender: str, text: bytes, *, unannounced: bool = False
    ) -> Awaitable[int]:
        """Assign the next ``seq``, store, deliver; resolves to the ``seq`` once stored.

        Not a coroutine: the ``seq`` order is fixed by the order of the calls, so a
        connection's messages keep the order it sent them in. ``unannounced``: the
        sender is no member (``chat.say`` with ``nick``); fails with ``ChatNickTaken``
        when a member holds that nick, checked in the same step as the store, so a join
        of the nick cannot come between the check and the message."""

    @abc.abstractmethod
    async def direct(self, dm: Direct, key: str) -> int:
        """Deliver to every connection holding a nick or user name with this key; how many."""

    @abc.abstractmethod
    async def members(self, room: str) -> list[str]:
        """The room's nicks, in a stable order."""

    @abc.abstractmethod
    async def rooms(self) -> list[tuple[str, int]]:
        """Every room that has members, with how many."""
