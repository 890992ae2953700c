"""The UDP course formats. Every reply is cut to ``wire.udp_budget`` of its request (3x,
at most 1 KiB) so the lab never amplifies, and command execution is never offered here."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable
from typing import Protocol, cast

from . import wire
from .console import Console
from .limits import LabLimits

__all__ = ["REPLIES", "CoursePort", "ReplyBudget"]

log = logging.getLogger("sockhub.lab")

REFUSED = b"the lab does not run commands over UDP; use exec-raw over TCP with --lab-exec\n"


class ReplyBudget(Protocol):
    """Replies a source address may still get (the server's per-source token buckets)."""

    def take(self, key: str, now: float) -> bool: ...


def _upper(data: bytes) -> list[bytes]:
    try:
        return [data.decode("utf-8").upper().encode("utf-8")]
    except UnicodeDecodeError:
        return [data.upper()]


def _hi(data: bytes) -> list[bytes]:
    return [b"hi"]


def _time(data: bytes) -> list[bytes]:
    return [wire.strftime_reply(data)]


def _qq(data: bytes) -> list[bytes]:
    return [data]


def _exec(data: bytes) -> list[bytes]:
    """B 5's client reads two datagrams (stderr, stdout): a refusal and nothing."""
    return [REFUSED, b""]


REPLIES: dict[str, Callable[[bytes], list[bytes]]] = {
    "udp-upper": _upper,
    "udp-hi": _hi,
    "udp-time": _time,
    "udp-qq": _qq,
    "udp-exec": _exec,
}


def bounded(request: bytes, replies: list[bytes], most: int) -> tuple[list[bytes], int]:
    """``replies`` cut so that together they stay within the request's budget."""
    left = wire.udp_budget(request, most)
    out, cut = [], 0
    for reply in replies:
        piece = reply[:left]
        cut += len(reply) - len(piece)
        left -= len(piece)
        out.append(piece)
    return out, cut


class CoursePort(asyncio.DatagramProtocol):
    def __init__(
        self,
        fmt: str,
        limits: LabLimits,
        sock: socket.socket | None = None,
        console: Console | None = None,
        budget: ReplyBudget | None = None,
    ) -> None:
        self.fmt = fmt
        self.limits = limits
        self.sock = sock
        self.console = console if fmt == "udp-qq" else None
        self._pending: set[asyncio.Task[None]] = set()
        self.answer = REPLIES[fmt]
        self.transport: asyncio.DatagramTransport | None = None
        self.budget = budget
        self._quiet_until = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def _over_budget(self, source: str) -> bool:
        """True (logged at most once a second) when ``source`` has used up its replies."""
        now = asyncio.get_running_loop().time()
        if self.budget is None or self.budget.take(source, now):
            return False
        if now >= self._quiet_until:
            self._quiet_until = now + 1.0
            log.warning(
                "%s %s is over its UDP reply budget (udp_replies_per_sec, udp_burst); "
                "its datagrams go unanswered",
                self.fmt,
                source,
            )
        return True

    def datagram_received(self, data: bytes, addr: tuple[str | bytes, int]) -> None:
        if self._over_budget(str(addr[0])):
            return
        if self.console is not None:
            if len(self._pending) >= self.limits.console_pending:
                log.warning(
                    "%s %s:%s: %d datagrams already wait for the console; dropped",
                    self.fmt,
                    addr[0],
                    addr[1],
                    self.limits.console_pending,
                )
                return
            task = asyncio.get_running_loop().create_task(self._typed(data, addr))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)
            return
        self._reply(data, addr, self.answer(data))

    async def _typed(self, data: bytes, addr: tuple[str | bytes, int]) -> None:
        """B's QQ server: the person at the console answers (within the same bound)."""
        assert self.console is not None
        who = f"{addr[0]!s}:{addr[1]}"
        text = data.decode("utf-8", "replace")
        typed = await self.console.answer(who, text, self.limits.console_wait)
        if typed is None:
            log.warning("%s %s: no reply from the console", self.fmt, who)
            return
        self._reply(data, addr, [typed.encode("utf-8")])

    def _reply(self, data: bytes, addr: tuple[str | bytes, int], answer: list[bytes]) -> None:
        who = f"{addr[0]!s}:{addr[1]}"
        if not data:
            log.warning("%s %s sent an empty datagram", self.fmt, who)
        replies, cut = bounded(data, answer, self.limits.udp_reply_max)
        if cut:
            log.warning(
                "%s %s: reply cut by %d bytes (UDP replies are at most 3x the request, 1 KiB)",
                self.fmt,
                who,
                cut,
            )
        else:
            log.info("%s %s sent %d bytes", self.fmt, who, len(data))
        assert self.transport is not None
        for reply in replies:
            if reply:
                self.transport.sendto(reply, addr)
            else:
                self._send_empty(addr)

    def _send_empty(self, addr: tuple[str | bytes, int]) -> None:
        """An empty datagram, which asyncio's transport silently drops: B's clients wait in
        recvfrom() for every answer, so even "nothing" must arrive as a datagram."""
        if self.sock is not None:
            with contextlib.suppress(BlockingIOError, InterruptedError, OSError):
                self.sock.sendto(b"", addr)

    def error_received(self, exc: Exception) -> None:
        log.warning("%s: %s", self.fmt, exc)
