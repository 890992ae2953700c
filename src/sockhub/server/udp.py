"""The UDP endpoint on the server's port: one whole frame per datagram (section 1).

Only ops marked ``udp`` (echo and time) are served, with inline handlers; replies are
rate-limited per source so a spoofed source cannot turn the server into an amplifier.
Anything that is not one valid frame is dropped without a word.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from ..protocol.errors import OpUnknown, ProtocolError, error_header
from ..protocol.fields import get_id
from ..protocol.frames import decode_datagram, encode_frame
from .service import Request

if TYPE_CHECKING:
    from .app import Server

__all__ = ["MAX_DATAGRAM", "UdpEndpoint"]

log = logging.getLogger("sockhub.server")
MAX_DATAGRAM = 65_507


class _Reply:
    """The Session a UDP request sees: a reply goes back to the datagram's source."""

    __slots__ = ("addr", "grants", "peer", "transport")
    user = None
    closed = False

    def __init__(self, transport: asyncio.DatagramTransport, addr: Any, grants: frozenset[str]):
        self.transport = transport
        self.addr = addr
        self.peer = str(addr[0])
        self.grants = grants

    def send(self, header: dict[str, Any], body: bytes | bytearray | memoryview = b"") -> None:
        frame = encode_frame(header, body)
        if len(frame) <= MAX_DATAGRAM:
            self.transport.sendto(frame, self.addr)


class UdpEndpoint(asyncio.DatagramProtocol):
    def __init__(self, server: Server) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        server = self.server
        limits = server.limits
        try:
            frame = decode_datagram(data, max_header=limits.max_header, max_body=limits.max_body)
            rid = get_id(frame.header)
        except ProtocolError:
            return
        op = frame.header.get("op")
        spec = server.ops.get(op) if isinstance(op, str) else None
        if rid is None or self.transport is None:
            return
        if not server.udp_replies.take(str(addr[0]), server.loop.time()):
            return
        session = _Reply(self.transport, addr, server.anonymous_grants)
        req = Request(session, frame.header, frame.body, rid)  # type: ignore[arg-type]
        try:
            if spec is None or not spec.udp:
                raise OpUnknown(f"op {op!r} is not served over UDP")
            server.permit(spec, session.grants, None)
            result = spec.handler(req)
            if result is not None:  # an async handler has no place on UDP
                raise OpUnknown(f"op {op!r} is not served over UDP")
        except ProtocolError as exc:
            exc.fatal = False
            session.send(error_header(exc, re=rid))
        except Exception:
            log.exception("udp op %s from %s failed", op, session.peer)

    def error_received(self, exc: Exception) -> None:
        log.debug("udp error: %s", exc)
