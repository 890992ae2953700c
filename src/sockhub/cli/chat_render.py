"""How chat shows up: plain lines, JSON objects, and styled fragments for the terminal UI.

Peer text and nicks are escaped before they reach a terminal (control, bidi and
zero-width characters become visible ``\\x1b``-style escapes), whatever the server
let through: nothing a peer types can move the cursor, recolour the screen or
reorder a line.
"""

from __future__ import annotations

import time
import zlib
from typing import Any

from ..client.chat import ChatEvent, ChatMessage
from ..client.chat_session import Incoming, Notice
from ..protocol.text import escape
from .chat_control import ME

__all__ = ["fragments", "nick_style", "render_json", "render_plain"]

Fragments = list[tuple[str, str]]

_NICK_COLORS = (
    "ansired",
    "ansigreen",
    "ansiyellow",
    "ansiblue",
    "ansimagenta",
    "ansicyan",
    "ansibrightred",
    "ansibrightgreen",
    "ansibrightyellow",
    "ansibrightblue",
    "ansibrightmagenta",
    "ansibrightcyan",
)
_INDENT = "\n" + " " * 11


def nick_style(nick: str) -> str:
    """The same colour for a nick every time, on every terminal."""
    return _NICK_COLORS[zlib.crc32(nick.encode("utf-8", "replace")) % len(_NICK_COLORS)] + " bold"


def _clock(ts: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(ts or time.time()))


def _nick(nick: str) -> str:
    return escape(nick, 64)


def _text(text: str) -> str:
    return escape(text, None, keep_lines=True).replace("\n", _INDENT)


def _event_text(item: ChatEvent) -> str:
    nick = _nick(item.nick)
    if item.event == "join":
        return f"{nick} joined"
    if item.event == "leave":
        return f"{nick} left"
    if item.event == "nick":
        return f"{_nick(item.old or '?')} is now {nick}"
    return f"{nick}: {escape(item.event, 32)}"


def _where(item: ChatMessage | ChatEvent, rooms: int) -> str:
    """``[room]`` when it helps (more than one room); ``[dm from NICK]`` for a direct message
    (one that arrives here was sent to us: who sent it is what matters)."""
    if isinstance(item, ChatMessage) and item.dm:
        return f"[dm from {_nick(item.sender)}] "
    room = item.room or ""
    return f"[{room}] " if rooms != 1 else ""


def fragments(item: Incoming, rooms: int = 1) -> Fragments:
    """Styled pieces of one line for prompt_toolkit."""
    if isinstance(item, Notice):
        return [("class:notice", f"*** {escape(item.text, 400)}")]
    out: Fragments = [("class:time", _clock(item.ts) + " ")]
    where = _where(item, rooms)
    if where:
        out.append(("class:room", where))
    if isinstance(item, ChatEvent):
        out.append(("class:event", "* " + _event_text(item)))
        return out
    style = nick_style(item.sender)
    if item.history:
        style += " dim"
    body = "class:history" if item.history else ""
    if item.text.startswith(ME):  # an action: * neo waves
        out += [(body, "* "), (style, _nick(item.sender)), (body, " ")]
        out.append((body, _text(item.text[len(ME) :])))
        return out
    if not item.dm:
        out += [(style, f"<{_nick(item.sender)}>"), (body, " ")]
    out.append((body, _text(item.text)))
    return out


def render_plain(item: Incoming, rooms: int = 1) -> str:
    """One line (continuation lines indented) for a terminal without colours or a pipe."""
    return "".join(text for _, text in fragments(item, rooms))


def render_json(item: Incoming) -> dict[str, Any]:
    """One JSON object per item; text is as received (JSON escapes it)."""
    if isinstance(item, Notice):
        return {"type": "notice", "kind": item.kind, "text": item.text}
    if isinstance(item, ChatEvent):
        out: dict[str, Any] = {
            "type": "event",
            "room": item.room,
            "event": item.event,
            "nick": item.nick,
            "ts": item.ts,
        }
        if item.old is not None:
            out["old"] = item.old
        return out
    msg: dict[str, Any] = {"type": "msg", "from": item.sender, "text": item.text, "ts": item.ts}
    if item.text.startswith(ME):
        msg.update(action=True, text=item.text[len(ME) :])
    if item.dm:
        msg.update(dm=True, to=item.to)
    else:
        msg.update(room=item.room, seq=item.seq)
    if item.history:
        msg["history"] = True
    return msg
