"""``lab check FORMAT HOST:PORT``: a course client and homework checker for a student's server.

It speaks only the course format (never a sockhub frame), bounds every step in time, and
with ``run`` starts the server itself so it can also try the restart the notes warn about
(EADDRINUSE while the old connection sits in TIME_WAIT).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
from collections.abc import Sequence

from .card import Card, Result
from .check_other import check_chat, check_ftp_put, check_udp
from .check_tcp import check_stream
from .conn import Closed, Conn, Silent, listening, open_conn
from .dialects import DIALECTS, ProtocolMismatch
from .formats import by_name

__all__ = ["CHECKABLE", "check"]

CHECKABLE = (
    *DIALECTS,
    "chat",
    "chat-plain",
    "ftp-put",
    "udp-upper",
    "udp-hi",
    "udp-time",
    "udp-qq",
    "udp-exec",
)
START_TIMEOUT = 10.0
RESTART_TALK = 3.0


async def _probes(fmt: str, host: str, port: int, timeout: float, card: Card) -> None:
    if fmt in ("chat", "chat-plain"):
        await check_chat(host, port, timeout, card)
    elif fmt == "ftp-put":
        await check_ftp_put(host, port, timeout, card)
    elif by_name(fmt).transport == "udp":
        await check_udp(fmt, host, port, timeout, card)
    else:
        await check_stream(fmt, host, port, timeout, card)


async def _connects(host: str, port: int) -> bool:
    try:
        conn = await open_conn(host, port, 1.0)
    except (Closed, Silent):
        return False
    conn.abort()
    return True


def _listening(host: str, port: int) -> bool:
    """Listening, judged without connecting where the system lets us."""
    known = listening(port)
    return known if known is not None else asyncio.run(_connects(host, port))


class Started:
    """A server process the checker started (its own process group, ended by its id)."""

    def __init__(self, argv: Sequence[str]) -> None:
        self.argv = list(argv)
        self.proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )

    async def ready(self, host: str, port: int, tcp: bool) -> str | None:
        """None once the server accepts connections, else why not (it exited, and how)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_TIMEOUT
        while loop.time() < deadline:
            if self.proc.poll() is not None:
                return self.stderr_tail() or f"exited with status {self.proc.returncode}"
            if not tcp:
                await asyncio.sleep(0.3)
                return None if self.proc.poll() is None else self.stderr_tail()
            if await asyncio.to_thread(_listening, host, port):
                return None
            await asyncio.sleep(0.05)
        return f"not listening within {START_TIMEOUT:g} s"

    def stderr_tail(self) -> str:
        assert self.proc.stderr is not None
        with contextlib.suppress(ValueError, OSError):
            if self.proc.poll() is not None:
                lines = self.proc.stderr.read().decode("utf-8", "replace").strip().splitlines()
                return lines[-1] if lines else ""
        return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        for pipe in (self.proc.stdin, self.proc.stderr):
            if pipe is not None:
                pipe.close()


async def _talking(fmt: str, host: str, port: int) -> Conn | None:
    """A connection the server has accepted and answered on (so killing the server makes
    its side close first), or None when it would not talk."""
    try:
        conn = await open_conn(host, port, RESTART_TALK)
        dialect = DIALECTS.get(fmt)
        if dialect is not None:
            await conn.send(dialect.request(dialect.sample))
            await dialect.read(conn, dialect.expect(dialect.sample))
        elif fmt != "ftp-put":
            await conn.send(b"hello")
            await conn.read_some()
    except (Closed, Silent, ProtocolMismatch):
        return None
    return conn


async def _restart(
    argv: Sequence[str], host: str, port: int, tcp: bool, first: Started, card: Card
) -> Started:
    """Kill the server while a client is connected (so its side holds TIME_WAIT), start again."""
    conn = await _talking(card.format, host, port) if tcp else None
    first.stop()
    second = Started(argv)
    problem = await second.ready(host, port, tcp)
    if conn is not None:
        conn.abort()
    if problem is None:
        card.results.append(
            Result("restart", "pass", "restarted at once on the same port (no EADDRINUSE)")
        )
    elif "Address already in use" in problem:
        card.results.append(
            Result("restart", "fail", f"restart failed: {problem} (set SO_REUSEADDR before bind)")
        )
    else:
        card.results.append(Result("restart", "fail", f"restart failed: {problem}"))
    return second


async def check(
    fmt: str, host: str, port: int, *, timeout: float = 3.0, run: Sequence[str] | None = None
) -> Card:
    """The report card of the ``fmt`` server at ``host:port`` (started from ``run`` if given)."""
    if fmt not in CHECKABLE:
        raise ValueError(f"no checker for {fmt!r}; checkable: {', '.join(CHECKABLE)}")
    card = Card(fmt, f"{host}:{port}")
    tcp = by_name(fmt).transport == "tcp"
    started = Started(run) if run else None
    try:
        if started is not None:
            problem = await started.ready(host, port, tcp)
            if problem is not None:
                card.results.append(Result("start", "fail", f"the server did not start: {problem}"))
                return card
        await _probes(fmt, host, port, timeout, card)
        if started is not None:
            started = await _restart(run or (), host, port, tcp, started, card)
    finally:
        if started is not None:
            started.stop()
    return card
