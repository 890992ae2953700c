"""What ``sockhub chat`` does with a typed line, the same in the terminal UI and with a pipe.

A line is a message to the current room, or a slash command. Each view (the
prompt_toolkit UI, plain lines, JSON lines) only decides how things look.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import re
import shlex
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from ..client.chat import ChatEvent
from ..client.chat_session import AsyncChatSession, Incoming, Notice
from ..protocol.errors import AuthFailed, ChatNickTaken, ProtocolError

__all__ = ["HELP", "ChatView", "Controller", "clean_input", "nick_candidates"]

HELP = """\
commands (anything else is sent to the current room):
  /join ROOM [NICK]   join a room, or switch to one you are in
  /leave [ROOM]       leave a room (default: the current one)
  /nick NAME          change your nick in the current room
  /who [ROOM]         who is in a room
  /rooms              every room with members
  /msg NICK TEXT      a direct message
  /more [COUNT]       older messages of the current room (PageUp: the same)
  /me ACTION          say what you do: * nick ACTION
  /quit               leave (Ctrl-D too)
  /help               this list
  //TEXT              send a line that starts with '/'"""

AUTO_NICK_TRIES = 9
MORE = 20
"""Older messages one ``/more`` shows unless told."""
PENDING_MAX = 100
"""Lines typed while disconnected, kept to be sent on reconnect; more are refused."""
ME = "/me "
"""A message whose text starts with this is an action, shown ``* nick waves`` (as IRC's)."""

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _picture(char: str) -> str:
    code = ord(char)
    if code < 0x20:
        return chr(0x2400 + code)  # ␛ for ESC: the Unicode "control pictures"
    return "\u2421" if code == 0x7F else "\ufffd"


def clean_input(text: str) -> str:
    """What was typed or pasted, made sendable: a control character (a pasted ESC) becomes
    its visible picture (``␛``), as the server refuses control characters in text, and
    bytes that were not UTF-8 (a terminal in another encoding) become U+FFFD.
    """
    text = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return _CONTROL.sub(lambda m: _picture(m.group()), text)


def nick_candidates(nick: str, explicit: bool) -> list[str]:
    """An explicit nick is tried alone; a default one gets numbered variants if taken."""
    if explicit:
        return [nick]
    return [nick] + [f"{nick[:30]}_{n}" for n in range(2, AUTO_NICK_TRIES + 1)]


class ChatView(Protocol):
    def show(self, item: Incoming) -> None:
        """An incoming message, event or connection notice."""

    def info(self, text: str, data: dict[str, Any]) -> None:
        """The result of a command: ``text`` for people, ``data`` for ``--json``."""

    def error(self, text: str, data: dict[str, Any]) -> None: ...


class Controller:
    """The rooms one ``sockhub chat`` is in, the current one, and the commands."""

    def __init__(
        self, session: AsyncChatSession, view: ChatView, nick: str, *, explicit_nick: bool
    ) -> None:
        self.session = session
        self.view = view
        self.nick = nick
        self.explicit_nick = explicit_nick
        self.current: str | None = None
        self.said: dict[str, int] = {}
        self.members: dict[str, set[str]] = {}
        self.oldest: dict[str, int] = {}
        """Per room, the lowest ``seq`` shown: ``/more`` asks for what lies below it."""
        self.pending: collections.deque[tuple[str, str]] = collections.deque()
        self._progress = asyncio.Event()
        self._commands: dict[str, Callable[[list[str], str], Awaitable[bool]]] = {
            "join": self._join_cmd,
            "leave": self._leave_cmd,
            "nick": self._nick_cmd,
            "who": self._who_cmd,
            "rooms": self._rooms_cmd,
            "msg": self._msg_cmd,
            "more": self._more_cmd,
            "me": self._me_cmd,
            "quit": self._quit_cmd,
            "help": self._help_cmd,
        }

    async def join(self, room: str, nick: str | None = None, *, history: int = 0) -> None:
        """Join (trying numbered nicks when ours was a default and is taken), show history."""
        nicks = nick_candidates(nick or self.nick, nick is not None or self.explicit_nick)
        for candidate in nicks[:-1]:
            with contextlib.suppress(ChatNickTaken):
                joined = await self.session.join(room, candidate, history=history)
                break
        else:
            joined = await self.session.join(room, nicks[-1], history=history)
        for msg in joined.history:
            self.view.show(msg)
        # what comes later arrives live, above the reply's seq
        first = joined.history[0].seq if joined.history else None
        self.oldest[room] = first if first is not None else joined.seq + 1
        self.current = room
        self.members[room] = set(joined.members)
        others = ", ".join(m for m in joined.members if m != joined.nick) or "nobody else"
        self.view.info(
            f"joined {room} as {joined.nick}; here: {others}",
            {"type": "joined", "room": room, "nick": joined.nick, "members": joined.members},
        )

    async def pump(self) -> None:
        """Show everything that arrives, for as long as the session lasts; after a
        reconnect, send what was typed while away."""
        async for item in self.session.events():
            self._track(item)
            self.view.show(item)
            self._progress.set()
            if isinstance(item, Notice) and item.kind == "reconnected":
                await self._send_pending()

    def _track(self, item: Incoming) -> None:
        """Who is in each room, for Tab completion."""
        if not isinstance(item, ChatEvent):
            return
        here = self.members.setdefault(item.room or "", set())
        if item.event == "join":
            here.add(item.nick)
        elif item.event == "leave":
            here.discard(item.nick)
        elif item.event == "nick":
            here.discard(item.old or "")
            here.add(item.nick)

    def command_names(self) -> list[str]:
        return sorted(f"/{name}" for name in self._commands)

    def nicks(self) -> list[str]:
        """The members of the current room, for Tab completion."""
        return sorted(self.members.get(self.current or "", ()))

    async def _send_pending(self) -> None:
        while self.pending:
            room, text = self.pending[0]
            if room not in self.session.state.rooms:
                self.pending.popleft()
                self.view.error(
                    f"not sent (no longer in {room}): {text}", _err("chat.not_joined", text)
                )
                continue
            self.said[room] = await self.session.say(room, text)
            self.pending.popleft()
            self.view.info(
                f"sent after reconnecting: {text}",
                {"type": "sent_late", "room": room, "text": text},
            )

    async def settle(self) -> None:
        """Wait until our own last message in each room has come back (all before it did)."""
        while any(
            room in self.session.state.rooms and self.session.state.rooms[room].seq < seq
            for room, seq in self.said.items()
        ):
            self._progress.clear()
            await self._progress.wait()

    async def handle(self, line: str) -> bool:
        """Run one typed line; False when it asked to quit."""
        line = clean_input(line)
        try:
            if line.startswith("/") and not line.startswith("//"):
                name, _, rest = line[1:].partition(" ")
                command = self._commands.get(name.lower())
                if command is None:
                    what = f"unknown command /{name}; /help lists them"
                    self.view.error(what, _err("usage", what))
                    return True
                free_text = name.lower() in ("msg", "me")
                return await command([] if free_text else shlex.split(rest), rest)
            if line:
                await self._say(line[1:] if line.startswith("//") else line)
        except AuthFailed:
            raise
        except ProtocolError as exc:
            if exc.fatal:  # the connection it came on is gone; a new one is on its way
                self._not_connected(exc, line)
            else:
                self.view.error(f"{exc.code}: {exc.message}", _err(exc.code, exc.message))
        except ValueError as exc:
            self.view.error(str(exc), _err("usage", str(exc)))
        except ConnectionError as exc:
            self._not_connected(exc, line)
        return True

    def _not_connected(self, exc: BaseException, line: str) -> None:
        """A message typed while away waits for the reconnect; a command is not done."""
        is_message = bool(line) and (not line.startswith("/") or line.startswith(("//", ME)))
        if not is_message or self.current is None or len(self.pending) >= PENDING_MAX:
            self.view.error(f"not done, not connected: {exc}", _err("closed", str(exc)))
            return
        text = line[1:] if line.startswith("//") else line
        self.pending.append((self.current, text))
        self.view.info(
            "not connected: sent when the connection is back",
            {"type": "queued", "room": self.current, "text": text},
        )

    async def _say(self, text: str) -> None:
        if self.current is None:
            raise ValueError("you are in no room; /join ROOM first")
        self.said[self.current] = await self.session.say(self.current, text)

    def _room_arg(self, args: list[str]) -> str:
        room = args[0] if args else self.current
        if room is None:
            raise ValueError("you are in no room; /join ROOM first")
        return room

    async def _join_cmd(self, args: list[str], rest: str) -> bool:
        if not args:
            raise ValueError("/join ROOM [NICK]")
        if args[0] in self.session.state.rooms:
            self.current = args[0]
            self.view.info(f"now talking in {args[0]}", {"type": "current", "room": args[0]})
            return True
        await self.join(args[0], args[1] if len(args) > 1 else None, history=20)
        return True

    async def _leave_cmd(self, args: list[str], rest: str) -> bool:
        room = self._room_arg(args)
        await self.session.leave(room)
        self.said.pop(room, None)
        self.oldest.pop(room, None)
        if self.current == room:
            self.current = next(iter(self.session.state.rooms), None)
        now = f"; now talking in {self.current}" if self.current else ""
        self.view.info(f"left {room}{now}", {"type": "left", "room": room})
        return True

    async def _nick_cmd(self, args: list[str], rest: str) -> bool:
        if len(args) != 1:
            raise ValueError("/nick NAME")
        room = self._room_arg([])
        old = self.session.state.rooms[room].nick if room in self.session.state.rooms else None
        await self.session.nick(room, args[0])
        self.nick, self.explicit_nick = args[0], True
        here = self.members.setdefault(room, set())
        here.discard(old or "")
        here.add(args[0])
        self.view.info(
            f"you are now {args[0]} in {room}",
            {"type": "nick", "room": room, "nick": args[0], "old": old},
        )
        return True

    async def _who_cmd(self, args: list[str], rest: str) -> bool:
        room = self._room_arg(args)
        members = await self.session.client.who(room)
        self.view.info(
            f"in {room}: {', '.join(members)}", {"type": "who", "room": room, "members": members}
        )
        return True

    async def _rooms_cmd(self, args: list[str], rest: str) -> bool:
        rooms = await self.session.client.rooms()
        listing = ", ".join(f"{r.room} ({r.members})" for r in rooms) or "none"
        self.view.info(
            f"rooms: {listing}",
            {"type": "rooms", "rooms": [{"room": r.room, "members": r.members} for r in rooms]},
        )
        return True

    async def _msg_cmd(self, args: list[str], rest: str) -> bool:
        to, _, text = rest.strip().partition(" ")
        if not to or not text:
            raise ValueError("/msg NICK TEXT")
        await self.session.client.dm(to, text)
        self.view.info(f"-> {to}: {text}", {"type": "dm_sent", "to": to, "text": text})
        return True

    async def _more_cmd(self, args: list[str], rest: str) -> bool:
        """Scroll-back: the messages just below the oldest one shown, oldest first (a
        terminal prints them under the newer ones, marked as history)."""
        if len(args) > 1 or (args and not args[0].isdigit()):
            raise ValueError("/more [COUNT]")
        room = self._room_arg([])
        before = self.oldest.get(room)
        page = await self.session.client.history(
            room, before=before, limit=int(args[0]) if args else MORE
        )
        for msg in page.messages:
            self.view.show(msg)
        if page.messages and page.messages[0].seq is not None:
            self.oldest[room] = page.messages[0].seq
        end = "/more for older ones" if page.more else "the beginning of its history"
        self.view.info(
            f"{len(page.messages)} older message(s) of {room} above; {end}",
            {"type": "history", "room": room, "count": len(page.messages), "more": page.more},
        )
        return True

    async def _me_cmd(self, args: list[str], rest: str) -> bool:
        if not rest.strip():
            raise ValueError("/me ACTION")
        await self._say(ME + rest.strip())
        return True

    async def _quit_cmd(self, args: list[str], rest: str) -> bool:
        return False

    async def _help_cmd(self, args: list[str], rest: str) -> bool:
        self.view.info(HELP, {"type": "help", "text": HELP})
        return True


def _err(code: str, message: str = "") -> dict[str, Any]:
    """The one error object of every command (cli/common.py), in the chat stream too."""
    return {"ok": False, "type": "error", "error": code, "message": message}
