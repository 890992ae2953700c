"""One course connection as the lab sees it: reads the way the notes' ``recv(1024)`` does,
and names every anomaly (empty message, reset, silence) in the log."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from .limits import LabLimits

__all__ = ["RECV_SIZE", "Peer"]

log = logging.getLogger("sockhub.lab")

RECV_SIZE = 1024


class Peer:
    def __init__(
        self,
        fmt: str,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        limits: LabLimits,
    ) -> None:
        self.fmt = fmt
        self.limits = limits
        self.reader = reader
        self.writer = writer
        peer = writer.get_extra_info("peername") or ("?", 0)
        self.addr: tuple[str, int] = (str(peer[0]), int(peer[1]))
        self.who = f"{self.addr[0]}:{self.addr[1]}"
        self.closed = False

    def info(self, message: str, *args: object) -> None:
        log.info("%s %s " + message, self.fmt, self.who, *args)

    def anomaly(self, message: str, *args: object) -> None:
        log.warning("%s %s " + message, self.fmt, self.who, *args)

    async def recv(self, size: int = RECV_SIZE) -> bytes:
        """What one ``recv(size)`` returns; b'' (logged) on close, reset or idle timeout."""
        timeout = self.limits.idle_timeout
        try:
            data = await asyncio.wait_for(self.reader.read(size), timeout)
        except TimeoutError:
            self.anomaly("said nothing for %g s; closing", timeout)
            return b""
        except (ConnectionResetError, BrokenPipeError):
            self.anomaly("disconnected abruptly (connection reset)")
            self.closed = True
            return b""
        if not data:
            self.info("closed the connection")
            self.closed = True
        return data

    async def line(self) -> bytes:
        """What ``makefile().readline()`` returns: a line, the unterminated rest at the end,
        then b'' (logged, as are silence, a reset and a line over ``max_line``)."""
        timeout = self.limits.idle_timeout
        try:
            return await asyncio.wait_for(self.reader.readuntil(b"\n"), timeout)
        except TimeoutError:
            self.anomaly("said nothing for %g s; closing", timeout)
        except asyncio.IncompleteReadError as exc:
            if exc.partial:
                self.anomaly("closed after %r without a newline; answering it", exc.partial[:80])
                return exc.partial
            self.info("closed the connection")
        except asyncio.LimitOverrunError:
            self.anomaly("sent a line over %d bytes; closing", self.limits.max_line)
        except (ConnectionResetError, BrokenPipeError):
            self.anomaly("disconnected abruptly (connection reset)")
        self.closed = True
        return b""

    async def exactly(self, n: int, timeout: float | None = None) -> bytes | None:
        """``n`` bytes, or None (logged) when the peer stops short."""
        timeout = timeout or self.limits.idle_timeout
        try:
            return await asyncio.wait_for(self.reader.readexactly(n), timeout)
        except asyncio.IncompleteReadError as exc:
            self.anomaly("stopped after %d of %d expected bytes", len(exc.partial), n)
        except TimeoutError:
            self.anomaly("sent fewer than %d bytes within %g s", n, timeout)
        except (ConnectionResetError, BrokenPipeError):
            self.anomaly("disconnected abruptly (connection reset)")
        self.closed = True
        return None

    async def send(self, data: bytes) -> bool:
        """Write and drain; False (logged) when the peer has gone."""
        if not data:
            return True
        try:
            self.writer.write(data)
            await asyncio.wait_for(self.writer.drain(), self.limits.send_timeout)
        except (ConnectionResetError, BrokenPipeError) as exc:
            self.anomaly("went away while we were answering (%s)", exc.__class__.__name__)
        except TimeoutError:
            self.anomaly("read none of our answer for %g s; closing", self.limits.send_timeout)
        else:
            return True
        self.closed = True
        self.writer.transport.abort()
        return False

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self.writer.wait_closed()
