"""Room and nick rules of PROTOCOL.md section 6, and the key two nicks are compared by.

Nicks are compared after NFKC normalisation and case folding, so ``Alice``, ``ALICE``
and the full-width form of ``Alice`` are one nick: nobody can impersonate a member (or a
registered user) with a look-alike that only differs in case or compatibility form.
"""

from __future__ import annotations

import re
import unicodedata

from ...protocol.errors import ChatBadName

__all__ = ["NICK_MAX", "ROOM_MAX", "check_nick", "check_room", "nick_key"]

ROOM_MAX = 64
NICK_MAX = 32
_ROOM = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def check_room(room: object) -> str:
    if not isinstance(room, str) or not _ROOM.fullmatch(room):
        raise ChatBadName(f"a room is 1-{ROOM_MAX} characters of letters, digits, '_', '.', '-'")
    return room


def check_nick(nick: object) -> str:
    if not isinstance(nick, str) or not 1 <= len(nick) <= NICK_MAX:
        raise ChatBadName(f"a nick is 1-{NICK_MAX} characters")
    if not nick.isprintable() or any(ch.isspace() for ch in nick):
        raise ChatBadName("a nick has no whitespace, control, bidi or zero-width characters")
    return nick


def nick_key(nick: str) -> str:
    """The form two nicks (or a nick and a user name) are compared in."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", nick).casefold())
