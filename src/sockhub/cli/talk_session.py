"""The talk front end: lines in (a prompt on a terminal, stdin otherwise), events out.

Everything the user sees of a peer goes through ``escape``: a peer's name and text can
hold any character, and none of them may move the cursor or rewrite the screen.
"""

from __future__ import annotations

import asyncio
import os
import stat
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from ..protocol.text import escape
from ..talk import (
    REPLAYED,
    STALE,
    UNVERIFIED,
    VERIFIED,
    Delivered,
    Outcome,
    Received,
    TalkError,
    TalkPeer,
)
from ..talk.core import peer_key
from .common import emit_json

__all__ = ["Session", "line_source", "prompt_source"]

HELP = """\
/to NAME|HOST:PORT   talk to this peer from now on
/book                list the address book
/help                this text
/quit                leave (after the messages on their way are settled)
//text               send a line that starts with '/'
anything else        is sent to the current peer"""


def _where(addr: Any) -> str:
    host, port = peer_key(addr)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _clock(ts: float) -> str:
    try:
        return time.strftime("%H:%M:%S", time.localtime(ts))
    except (OverflowError, OSError, ValueError):
        return "--:--:--"


def render(msg: Received) -> str:
    """One incoming message as a terminal line: time, who, whether it is signed, text."""
    if msg.name is not None:
        who = escape(msg.name, 64)
    else:
        who = f'{_where(msg.addr)} "{escape(msg.sender, 64)}"'
    if msg.trust == VERIFIED:
        who += " [verified]"
    elif msg.trust == UNVERIFIED:
        who += " [UNVERIFIED: missing or wrong signature]"
    elif msg.trust == STALE:
        who += " [STALE: signed, but its time is off: a replay or a wrong clock]"
    elif msg.trust == REPLAYED:
        who += " [REPLAYED: signed, but this message was already shown]"
    text = escape(msg.text, None, keep_lines=True).replace("\n", "\n    ")
    return f"[{_clock(msg.ts)}] {who}: {text}"


@dataclass(slots=True)
class _Target:
    label: str
    addr: Any
    key: bytes | None


class Session:
    """The state of one ``sockhub talk`` run: the peer, the current target, open sends."""

    def __init__(self, peer: TalkPeer, *, json: bool = False) -> None:
        self.peer = peer
        self.json = json
        self.target: _Target | None = None
        self.sends: set[asyncio.Task[Outcome | None]] = set()
        self.failed = 0

    @property
    def prompt(self) -> str:
        return f"{self.target.label if self.target else '(no peer: /to NAME)'}> "

    def say(self, text: str) -> None:
        print(text, file=sys.stderr if not sys.stdout.isatty() else sys.stdout, flush=True)

    def error(self, message: str) -> None:
        self.failed += 1
        if self.json:
            emit_json(  # the error object of every command (cli/common.py), in talk's stream
                {
                    "event": "error",
                    "ok": False,
                    "type": "error",
                    "error": "talk",
                    "message": message,
                }
            )
        else:
            print(f"talk: {escape(message, None)}", file=sys.stderr, flush=True)

    async def choose(self, target: str) -> None:
        try:
            addr, entry = await self.peer.lookup(target)
        except TalkError as exc:
            self.error(str(exc))
            return
        label = entry.name if entry is not None else _where(addr)
        self.target = _Target(label, addr, entry.key if entry is not None else None)
        signed = ", messages signed with the shared key" if self.target.key else ""
        where = f" at {_where(addr)}" if entry is not None else ""
        self.say(f"talk: talking to {escape(label)}{where}{signed}")

    async def handle(self, line: str) -> bool:
        """Act on one input line; False when the user asked to leave."""
        if line.startswith("/") and not line.startswith("//"):
            word, _, rest = line[1:].partition(" ")
            if word in ("quit", "exit", "q"):
                return False
            if word == "to" and rest.strip():
                await self.choose(rest.strip())
            elif word == "book":
                self.list_book()
            elif word == "help":
                self.say(HELP)
            else:
                self.error(f"unknown command {line.split()[0]!r}; /help lists them")
            return True
        self.send(line[1:] if line.startswith("//") else line)
        return True

    def list_book(self) -> None:
        book = self.peer.book
        entries = sorted(book.entries.values(), key=lambda e: e.name) if book else []
        lines = [f"  {escape(e.name)}\t{e.address}{'  (key)' if e.key else ''}" for e in entries]
        self.say("\n".join(lines) or "talk: the address book is empty (sockhub talk --add)")

    def send(self, text: str) -> None:
        target = self.target
        if target is None:
            self.error("no peer yet: /to NAME or /to HOST:PORT first")
            return
        try:
            mid, fut = self.peer.send(target.addr, text, target.key)
        except TalkError as exc:
            self.error(f"not sent: {exc}")
            return
        task = asyncio.ensure_future(self._report(target.label, mid, text, fut))
        self.sends.add(task)
        task.add_done_callback(self.sends.discard)

    async def _report(
        self, label: str, mid: int, text: str, fut: asyncio.Future[Outcome]
    ) -> Outcome | None:
        try:
            outcome = await fut
        except asyncio.CancelledError:
            return None
        ok = isinstance(outcome, Delivered)
        if not ok:
            self.failed += 1
        if self.json:
            event = "delivered" if ok else "not_delivered"
            emit_json({"event": event, "to": label, "id": mid, "tries": outcome.tries})
        else:
            what = "delivered" if ok else f"NOT delivered (no ack after {outcome.tries} tries)"
            print(f"  -> {escape(label)}: {what}: {escape(text, 40)}", flush=True)
        return outcome

    async def show_incoming(self) -> None:
        while True:
            msg = await self.peer.next_message()
            if self.json:
                emit_json(
                    {
                        "event": "message",
                        "from": msg.sender,
                        "name": msg.name,
                        "address": _where(msg.addr),
                        "id": msg.id,
                        "ts": msg.ts,
                        "trust": msg.trust,
                        "text": msg.text,
                    }
                )
            else:
                print(render(msg), flush=True)

    async def run(self, lines: AsyncIterator[str]) -> int:
        """Read lines until EOF or /quit, then wait for the sends still on their way.

        Ctrl-C stops at once, whatever is still unconfirmed (said, not waited for).
        """
        incoming = asyncio.ensure_future(self.show_incoming())
        try:
            async for line in lines:
                if not await self.handle(line):
                    break
            if self.sends:
                self.say(
                    f"talk: waiting for {_messages(len(self.sends))} to be confirmed (Ctrl-C stops)"
                )
                await asyncio.gather(*self.sends)
        except KeyboardInterrupt:
            if self.sends:
                self.say(f"talk: stopped; {_messages(len(self.sends))} not confirmed")
            for task in list(self.sends):
                task.cancel()
            return 130
        finally:
            incoming.cancel()
        return 1 if self.failed else 0


def _messages(n: int) -> str:
    return f"{n} message" if n == 1 else f"{n} messages"


async def line_source() -> AsyncIterator[str]:
    """stdin lines when it is not a terminal: a pipe, a socket, a file."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 20)
    mode = os.fstat(sys.stdin.fileno()).st_mode
    if stat.S_ISREG(mode) or (stat.S_ISCHR(mode) and not sys.stdin.isatty()):
        # a file or /dev/null: reading never blocks, and epoll refuses to watch them
        for line in sys.stdin:
            yield line.rstrip("\r\n")
        return
    pipe, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    try:
        while raw := await reader.readline():
            yield raw.decode("utf-8", "surrogateescape").rstrip("\r\n")
    except ValueError:  # a line over the limit: it could never be sent anyway
        raise TalkError("an input line is over 1 MiB") from None
    finally:
        pipe.close()


async def prompt_source(prompt: Callable[[], str]) -> AsyncIterator[str]:
    """Lines from a prompt_toolkit prompt; incoming messages print above it."""
    from prompt_toolkit import PromptSession
    from prompt_toolkit.patch_stdout import patch_stdout

    from .prompt_keys import safe_bindings

    session: PromptSession[str] = PromptSession(key_bindings=safe_bindings())
    with patch_stdout():
        while True:
            try:
                yield await session.prompt_async(prompt)
            except EOFError:  # Ctrl-D: the end, after the sends on their way
                return
