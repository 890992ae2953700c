"""The TCP, TLS and UNIX adapter: an ``asyncio.BufferedProtocol`` around a ``ServerSession``.

Everything about the protocol lives in the session; this shell turns asyncio's protocol
callbacks into session calls and offers the transport as the session's ``Link``.

TLS listeners accept here rather than in asyncio's server, so a connection is counted
against the caps the moment it is accepted, before its handshake.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import struct
from typing import TYPE_CHECKING

from .session import ServerSession

if TYPE_CHECKING:
    from .app import Server

__all__ = ["StreamAdapter", "accept_tls"]

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


async def accept_tls(
    server: Server, listener: socket.socket, kind: str, ctx: ssl.SSLContext
) -> None:
    """Accept TLS clients on ``listener``, each counted against the caps before its
    handshake: silent handshakes hold counted slots, never every descriptor."""
    try:
        while True:
            sock, addr = await server.loop.sock_accept(listener)
            adapter = StreamAdapter(server, kind)
            session = adapter.session
            session.peer = str(addr[0]) if isinstance(addr, tuple) else "unix"
            refusal = session.admit()
            if refusal is not None:
                log.warning("refused %s %s before TLS: %s", kind, session.peer, refusal.message)
                sock.close()
                continue
            server.background.spawn(_handshake(server, adapter, sock, ctx), "tls handshake")
    finally:
        listener.close()


async def _handshake(
    server: Server, adapter: StreamAdapter, sock: socket.socket, ctx: ssl.SSLContext
) -> None:
    try:
        await server.loop.connect_accepted_socket(
            lambda: adapter, sock, ssl=ctx, ssl_handshake_timeout=server.limits.handshake_timeout
        )
    except BaseException as exc:
        log.info("tls handshake with %s failed: %s", adapter.session.peer, exc or type(exc))
        sock.close()
        adapter.session.connection_lost(None)  # uncounted
        if not isinstance(exc, Exception):
            raise
