"""The UDP endpoint on the server's port: one whole frame per datagram (section 1).

Only ops marked ``udp`` (echo and time) are served, with inline handlers. A datagram's
source address may be forged, so the server must not be usable as an amplifier: no
reply is larger than the datagram that caused it (``fit_reply``), and replies are
rate-limited per source. Anything that is not one valid frame is dropped without a word.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from ..protocol.errors import FrameTooLarge, OpUnknown, ProtocolError, error_header
from ..protocol.fields import get_id
from ..protocol.frames import decode_datagram, encode_frame
from .service import Request

if TYPE_CHECKING:
    from .app import Server

__all__ = ["UdpEndpoint", "fit_reply"]

log = logging.getLogger("sockhub.server")


def fit_reply(header: dict[str, Any], body: bytes | bytearray | memoryview, room: int) -> bytes:
    """The datagram to answer with when the request was ``room`` bytes: b"" for none.

    PROTOCOL.md section 1 (UDP): a reply that fits is sent whole. One that does not is
    replaced by a ``frame.too_large`` error whose ``need`` says how large a request must
    be to get it (a client pads its request and asks again); an error keeps its code. An
    error's message is shortened to fit, down to "", and an error that does not fit even
    then is not sent: the server never sends more bytes than it was sent.
    """
    frame = encode_frame(header, body)
    if len(frame) <= room:  # as large as a datagram that arrived: it can go back the same way
        return frame
    if header.get("op") != "error":
        too_large = FrameTooLarge("reply larger than the request; pad it", fatal=False)
        header = {**error_header(too_large, re=header.get("re")), "need": len(frame)}
    message = str(header.get("message", ""))
    while True:
        frame = encode_frame({**header, "message": message})
        over = len(frame) - room
        if over <= 0:
            return frame
        if not message:
            return b""
        message = message[: max(0, len(message) - over)]


class _Reply:
    """The Session a UDP request sees: a reply goes back to the datagram's source."""

    __slots__ = ("addr", "grants", "peer", "room", "transport")
    user = None
    closed = False

    def __init__(
        self, transport: asyncio.DatagramTransport, addr: Any, grants: frozenset[str], room: int
    ):
        self.transport = transport
        self.addr = addr
        self.peer = str(addr[0])
        self.grants = grants
        self.room = room
        """The size of the request datagram: no reply may be larger."""

    def send(self, header: dict[str, Any], body: bytes | bytearray | memoryview = b"") -> None:
        frame = fit_reply(header, body, self.room)
        if frame:
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
        session = _Reply(self.transport, addr, server.anonymous_grants, len(data))
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
