"""The TCP, TLS and UNIX adapter: an ``asyncio.BufferedProtocol`` around a ``ServerSession``.

Everything about the protocol lives in the session; this shell turns asyncio's protocol
callbacks into session calls and offers the transport as the session's ``Link``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from typing import TYPE_CHECKING

from .session import ServerSession

if TYPE_CHECKING:
    from .app import Server

__all__ = ["StreamAdapter"]

log = logging.getLogger("sockhub.server")

_LINGER_ABORT = struct.pack("ii", 1, 0)


class StreamAdapter(asyncio.BufferedProtocol):
    __slots__ = ("session", "transport")

    def __init__(self, server: Server, kind: str) -> None:
        self.transport: asyncio.Transport | None = None
        self.session = ServerSession(server, self, kind, "")

    # asyncio.BufferedProtocol --------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's are not subclasses
        peer = transport.get_extra_info("peername")
        session = self.session
        session.peer = str(peer[0]) if isinstance(peer, tuple) else "unix"
        session.open()

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.session.get_buffer(sizehint)

    def buffer_updated(self, nbytes: int) -> None:
        self.session.buffer_updated(nbytes)

    def eof_received(self) -> bool:
        return self.session.receive_eof()

    def pause_writing(self) -> None:
        self.session.pause_writing()

    def resume_writing(self) -> None:
        self.session.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self.session.connection_lost(exc)

    # the session's Link ---------------------------------------------------------------

    def write(self, data: bytes | bytearray | memoryview) -> None:
        assert self.transport is not None
        self.transport.write(data)

    def buffered(self) -> int:
        return self.transport.get_write_buffer_size() if self.transport is not None else 0

    def pause_reading(self) -> None:
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None:
            self.transport.resume_reading()

    def write_eof(self) -> bool:
        if self.transport is None or not self.transport.can_write_eof():
            return False
        self.transport.write_eof()
        return True

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        """Close at once with a reset, so an unread socket cannot pin kernel buffers."""
        if self.transport is None:
            return
        sock = self.transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ABORT)
        self.transport.abort()

    def socket_fd(self) -> int | None:
        if self.transport is None or self.transport.get_extra_info("sslcontext") is not None:
            return None
        sock = self.transport.get_extra_info("socket")
        return None if sock is None else int(sock.fileno())
