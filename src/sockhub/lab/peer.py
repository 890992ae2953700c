"""One course connection as the lab sees it: reads the way the notes' ``recv(1024)`` does,
and names every anomaly (empty message, reset, silence) in the log."""

from __future__ import annotations

import asyncio
import contextlib
import logging

__all__ = ["IDLE_TIMEOUT", "RECV_SIZE", "Peer"]

log = logging.getLogger("sockhub.lab")

RECV_SIZE = 1024
IDLE_TIMEOUT = 600.0


class Peer:
    def __init__(
        self, fmt: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.fmt = fmt
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

    async def recv(self, size: int = RECV_SIZE, timeout: float = IDLE_TIMEOUT) -> bytes:
        """What one ``recv(size)`` returns; b'' (logged) on close, reset or idle timeout."""
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

    async def exactly(self, n: int, timeout: float = IDLE_TIMEOUT) -> bytes | None:
        """``n`` bytes, or None (logged) when the peer stops short."""
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
            await self.writer.drain()
        except (ConnectionResetError, BrokenPipeError) as exc:
            self.anomaly("went away while we were answering (%s)", exc.__class__.__name__)
            self.closed = True
            return False
        return True

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self.writer.wait_closed()
