"""``sockhub chat`` (interactive, or line by line from a pipe) and ``sockhub say``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import sys
import threading
from typing import Any

from ..client import Client, read_key
from ..client.chat_session import AsyncChatSession, Incoming
from ..protocol.errors import ChatNickTaken
from ..protocol.text import escape
from .chat_control import Controller, nick_candidates
from .chat_render import render_json, render_plain
from .common import (
    EXIT_FAILED,
    EXIT_USAGE,
    CliError,
    add_client_args,
    command,
    connect,
    emit_json,
    examples,
)

__all__ = ["register"]

FALLBACK_NICK = "guest"


def default_nick(args: argparse.Namespace) -> tuple[str, bool]:
    """The nick to use and whether the user chose it (a chosen one is never varied)."""
    if args.nick:
        return args.nick, True
    if args.user:
        return args.user, False
    try:
        name = getpass.getuser()
    except (OSError, KeyError):
        name = FALLBACK_NICK
    ok = 0 < len(name) <= 32 and name.isprintable() and not any(c.isspace() for c in name)
    return (name if ok else FALLBACK_NICK), False


def _session(args: argparse.Namespace) -> AsyncChatSession:
    if args.key_file and not args.user:
        raise CliError("--key-file needs --user (or SOCKHUB_USER)", EXIT_USAGE)
    key = read_key(args.key_file) if args.user else None
    return AsyncChatSession(
        args.server,
        user=args.user,
        key=key,
        tls=args.tls,
        fingerprint=args.tls_fingerprint,
        known_hosts=args.known_hosts,
        timeout=args.timeout,
    )


class LineView:
    """Plain lines (or JSON objects) on stdout; command results and errors on stderr."""

    def __init__(self, session: AsyncChatSession, as_json: bool) -> None:
        self._session = session
        self._json = as_json
        self.errors = 0

    def show(self, item: Incoming) -> None:
        if self._json:
            emit_json(render_json(item))
        else:
            print(render_plain(item, len(self._session.state.rooms)), flush=True)

    def info(self, text: str, data: dict[str, Any]) -> None:
        if self._json:
            emit_json(data)
        else:
            print(escape(text, None, keep_lines=True), file=sys.stderr, flush=True)

    def error(self, text: str, data: dict[str, Any]) -> None:
        self.errors += 1
        if self._json:
            emit_json(data)
        print(f"sockhub: {escape(text, None, keep_lines=True)}", file=sys.stderr, flush=True)


def _decode(raw: bytes, number: int) -> str:
    """A stdin line as text; bytes that are not UTF-8 (GBK, Latin-1) become U+FFFD, said once."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        print(
            f"sockhub: stdin line {number} is not UTF-8; its bad bytes are sent as \ufffd "
            "(convert first, e.g. iconv -f GBK -t UTF-8)",
            file=sys.stderr,
            flush=True,
        )
        return raw.decode("utf-8", "replace")


def _stdin_lines(loop: asyncio.AbstractEventLoop) -> asyncio.Queue[str | None]:
    """stdin lines, read on a daemon thread so an open pipe never keeps us from exiting."""
    lines: asyncio.Queue[str | None] = asyncio.Queue()

    def read() -> None:
        for number, raw in enumerate(sys.stdin.buffer, 1):
            line = _decode(raw.rstrip(b"\r\n"), number)
            loop.call_soon_threadsafe(lines.put_nowait, line)
        loop.call_soon_threadsafe(lines.put_nowait, None)

    threading.Thread(target=read, name="sockhub-stdin", daemon=True).start()
    return lines


async def _run_lines(controller: Controller, view: LineView, args: argparse.Namespace) -> int:
    """Each stdin line is sent (or run as a command); incoming lines are printed."""
    await controller.join(args.room, history=args.history)
    pump = asyncio.get_running_loop().create_task(controller.pump())
    lines = _stdin_lines(asyncio.get_running_loop())
    try:
        while (line := await _next_line(lines, pump)) is not None:
            if not await controller.handle(line):
                break
        await asyncio.wait_for(controller.settle(), args.timeout)
        if args.listen:
            await pump
    finally:
        pump.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pump  # the session's end (a refused key, a closed stdout) is raised here
    return EXIT_FAILED if view.errors else 0


async def _next_line(lines: asyncio.Queue[str | None], pump: asyncio.Task[None]) -> str | None:
    """The next stdin line; None at its end, or when the session itself has ended."""
    getter = asyncio.ensure_future(lines.get())
    await asyncio.wait((getter, pump), return_when=asyncio.FIRST_COMPLETED)
    if getter.done():
        return getter.result()
    getter.cancel()
    return None


async def _chat_main(args: argparse.Namespace, interactive: bool) -> int:
    session = _session(args)
    await session.connect()
    nick, explicit = default_nick(args)
    try:
        if interactive:
            from .chat_tui import TuiView, run_tui

            tui = TuiView(lambda: len(session.state.rooms))
            controller = Controller(session, tui, nick, explicit_nick=explicit)
            return await run_tui(controller, args.room, args.history)
        view = LineView(session, args.json)
        controller = Controller(session, view, nick, explicit_nick=explicit)
        return await _run_lines(controller, view, args)
    finally:
        await session.close()


@command
def _chat(args: argparse.Namespace) -> int:
    interactive = sys.stdin.isatty() and sys.stdout.isatty() and not args.json
    if args.history is None:
        args.history = 20 if interactive else 0
    try:
        return asyncio.run(_chat_main(args, interactive))
    except ValueError as exc:
        raise CliError(str(exc), EXIT_USAGE) from exc


def _say_first(client: Client, room: str, text: str, nicks: list[str]) -> tuple[str, int]:
    """Say ``text`` unannounced as the first of ``nicks`` that is free; the nick and ``seq``."""
    for nick in nicks[:-1]:
        with contextlib.suppress(ChatNickTaken):
            return nick, client.say(room, text, nick=nick)
    return nicks[-1], client.say(room, text, nick=nicks[-1])


@command
def _say(args: argparse.Namespace) -> int:
    text = " ".join(args.text)
    nick, explicit = default_nick(args)
    with connect(args) as client:
        said, seq = _say_first(client, args.room, text, nick_candidates(nick, explicit))
    if args.json:
        emit_json({"ok": True, "room": args.room, "nick": said, "seq": seq})
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser(
        "chat",
        help="chat in a room (interactive; with a pipe, one message per line)",
        description=(
            "Join a room and chat. On a terminal: an interactive client (type /help). With "
            "stdin not a terminal: every stdin line is sent (slash commands work too) and "
            "every incoming message is printed, one per line; it exits once stdin ends and "
            "its own messages have come back (--listen keeps printing). Reconnects by itself."
        ),
        **examples("""
  sockhub chat                                  # lobby, nick = your login name
  sockhub chat --room dev --nick ada
  printf 'build done\\n' | sockhub chat --room ci --nick bot
  sockhub chat --room ci --json --listen < /dev/null   # a listener: one JSON object a line
  sockhub chat --history 100                    # show the last 100 messages first
"""),
    )
    p.add_argument("--room", "-r", default="lobby", help="room to join (default %(default)s)")
    p.add_argument("--nick", "-n", help="your nick (default: your user, else your login name)")
    p.add_argument(
        "--history",
        type=int,
        metavar="N",
        help="show the last N messages on joining (default 20 interactive, 0 otherwise)",
    )
    p.add_argument(
        "--listen", action="store_true", help="with a pipe: keep printing after stdin ends"
    )
    add_client_args(p)
    p.set_defaults(func=_chat)

    p = sub.add_parser(
        "say",
        help="send one message to a room and exit",
        description="Send TEXT (the words joined by spaces) to ROOM without joining it: "
        "the members see the message and no join or leave.",
        **examples("""
  sockhub say --room lobby hello everyone
  sockhub say -r ci --nick bot "deploy finished"
  sockhub say -r ci --json done                 # {"ok": true, "room": "ci", "nick": ..., "seq": 7}
"""),
    )
    p.add_argument("--room", "-r", default="lobby", help="room to send to (default %(default)s)")
    p.add_argument("--nick", "-n", help="your nick (default: your user, else your login name)")
    p.add_argument("text", nargs="+", help="the message")
    add_client_args(p)
    p.set_defaults(func=_say)
