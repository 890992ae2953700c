"""Who is in which room under which nick, and which connections a name reaches (DMs).

Plain data, no I/O: the in-process broker keeps one; a broker spanning processes keeps
the same facts in shared storage.
"""

from __future__ import annotations

import collections

from ...protocol.errors import ChatNickTaken, ChatNotJoined
from .broker import Member
from .names import nick_key

__all__ = ["Presence"]


class _Room:
    __slots__ = ("members", "nicks")

    def __init__(self) -> None:
        self.nicks: dict[str, str] = {}
        """nick key -> member id"""
        self.members: dict[str, tuple[Member, str]] = {}
        """member id -> (member, nick)"""


class Presence:
    def __init__(self) -> None:
        self._rooms: dict[str, _Room] = {}
        self._holders: dict[str, collections.Counter[str]] = {}
        """nick or user key -> connection id -> how many memberships hold it"""

    def claim(self, room: str, member: Member, nick: str) -> None:
        """Put ``member`` in ``room`` as ``nick``; ``ChatNickTaken`` if someone holds it."""
        key = nick_key(nick)
        state = self._rooms.get(room)
        if state is None:
            state = self._rooms[room] = _Room()
        if key in state.nicks:
            raise ChatNickTaken(f"the nick {nick} is in use in {room}")
        state.nicks[key] = member.id
        state.members[member.id] = (member, nick)
        self._hold(member, key, 1)

    def release(self, room: str, member: Member) -> str | None:
        """Take ``member`` out of ``room``; its nick, or None when it was not there."""
        state = self._rooms.get(room)
        entry = state.members.pop(member.id, None) if state is not None else None
        if state is None or entry is None:
            return None
        nick = entry[1]
        key = nick_key(nick)
        del state.nicks[key]
        self._hold(member, key, -1)
        if not state.members:
            del self._rooms[room]
        return nick

    def rename(self, room: str, member: Member, nick: str) -> str:
        """Give ``member`` a new nick in ``room``; the old one."""
        state = self._rooms.get(room)
        entry = state.members.get(member.id) if state is not None else None
        if state is None or entry is None:
            raise ChatNotJoined(f"not in {room}")
        old = entry[1]
        old_key, key = nick_key(old), nick_key(nick)
        if state.nicks.get(key, member.id) != member.id:
            raise ChatNickTaken(f"the nick {nick} is in use in {room}")
        del state.nicks[old_key]
        state.nicks[key] = member.id
        state.members[member.id] = (member, nick)
        self._hold(member, old_key, -1, user=False)
        self._hold(member, key, 1, user=False)
        return old

    def _hold(self, member: Member, key: str, delta: int, *, user: bool = True) -> None:
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

    def held(self, room: str, nick: str) -> bool:
        """Whether a member of ``room`` holds ``nick`` (or a nick with its key)."""
        state = self._rooms.get(room)
        return state is not None and nick_key(nick) in state.nicks

    def nicks(self, room: str) -> list[str]:
        state = self._rooms.get(room)
        if state is None:
            return []
        return sorted((nick for _, nick in state.members.values()), key=lambda n: (nick_key(n), n))

    def rooms(self) -> list[tuple[str, int]]:
        return sorted((room, len(state.members)) for room, state in self._rooms.items())

    def reach(self, key: str) -> list[str]:
        """The connections holding a nick or a user name with this key, in any room."""
        return list(self._holders.get(key, ()))
