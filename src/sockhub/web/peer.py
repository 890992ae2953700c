"""One TCP (or TLS) connection on the web port: an HTTP request, then maybe a WebSocket.

python-websockets' sans-IO ``ServerProtocol`` parses the request and makes the answer (a
page file, a refusal, or the upgrade with its checks); this asyncio protocol feeds it
bytes and writes what it produces. After the 101 the ``ServerProtocol`` is dropped and
the connection's frames are read by ``framing.FrameReader``: an idle WebSocket then costs
little more than an idle TCP connection (docs/web.md, "Figures"). Each binary message's
bytes go to the session that runs sockhub on top; the session's writes leave as binary
messages through ``session.WebSocketLink``. A connection whose first bytes are a POST
(an upload's body, ``POST /up/<token>``) is handed to ``upload.PostPeer`` instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from http import HTTPStatus
from typing import TYPE_CHECKING, Protocol

from websockets.datastructures import MultipleValuesError
from websockets.http11 import Request, Response
from websockets.server import ServerProtocol

from .framing import (
    BINARY,
    CLOSE,
    FIN,
    PING,
    PING_FRAME,
    PONG,
    PROTOCOL_ERROR,
    FrameError,
    FrameReader,
    close_frame,
    frame_header,
    parse_close,
    pong_frame,
)
from .http import WS_PATH, content_security_policy, page_response, plain_response
from .upload import PostPeer

if TYPE_CHECKING:
    from .listener import WebListener

__all__ = ["OPEN", "SUBPROTOCOL", "MessageReceiver", "WebPeer"]

log = logging.getLogger("sockhub.web")
_quiet = logging.getLogger("sockhub.web.websockets")
_quiet.setLevel(logging.WARNING)

SUBPROTOCOL = "sockhub.v1"

# what the connection is
HTTP = 0
"""Reading the request, or answering one that is not an upgrade."""
OPEN = 1
CLOSING = 2
"""The server sent its close frame and waits for the client's."""
CLOSED = 3
"""Both close frames went (or the connection failed): input is discarded."""


class MessageReceiver(Protocol):
    """What runs on top of an open WebSocket (the sockhub session adapter)."""

    def message_data(self, data: bytes) -> None:
        """Bytes of a binary message, as they come: the messages' payloads in order are
        one byte stream (docs/PROTOCOL.md section 1), so where a message ends says nothing."""

    def writing_paused(self) -> None:
        """The socket's send buffer is full: stop producing."""

    def writing_resumed(self) -> None: ...

    def lost(self, exc: Exception | None) -> None:
        """The connection ended, whoever ended it."""


def _header(request: Request, name: str) -> str | None:
    """One header's value; a repeated one counts as missing (it is not trustworthy)."""
    try:
        return request.headers.get(name)
    except MultipleValuesError:
        return None


class WebPeer(asyncio.Protocol):
    __slots__ = (
        "_close_timer",
        "frames",
        "last_ping_sent",
        "last_pong",
        "opened",
        "peer",
        "reading_paused",
        "receiver",
        "state",
        "transport",
        "web",
        "ws",
    )

    def __init__(self, web: WebListener) -> None:
        self.web = web
        self.ws: ServerProtocol | None = None
        """The request's parser and answer, from the first bytes; None again after a 101."""
        self.frames: FrameReader | None = None
        """The frame reader, from the upgrade until input is discarded."""
        self.state = HTTP
        self.transport: asyncio.Transport | None = None
        self.peer = ""
        self.receiver: MessageReceiver | None = None
        self.opened = web.loop.time()
        self.last_pong = self.last_ping_sent = self.opened
        self.reading_paused = False
        self._close_timer: asyncio.TimerHandle | None = None

    # asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.peer = str(peer[0]) if isinstance(peer, tuple) else "?"
        if not self.web.hold(self.peer):
            log.info("web %s: too many connections not yet a session; closed", self.peer)
            self.state = CLOSED
            transport.close()
            return
        self.web.peers.add(self)

    def data_received(self, data: bytes) -> None:
        if self.ws is not None:
            self._request_data(self.ws, data)
        elif self.frames is not None:
            self.frames.feed(data)
            if not self.reading_paused:
                self._read()
        elif self.state == HTTP:
            self._first_data(data)

    def _first_data(self, data: bytes) -> None:
        """An upload's POST goes to a protocol object of its own (``upload.PostPeer``,
        h11); anything else to python-websockets' handshake, which serves GET only."""
        if data.startswith(b"POST ") and self.transport is not None:
            self.web.peers.discard(self)
            self.state = CLOSED
            post = PostPeer(self.web, self.transport, self.peer)
            self.transport.set_protocol(post)
            post.feed(data)
            return
        self.ws = ServerProtocol(
            subprotocols=[SUBPROTOCOL],  # type: ignore[list-item]
            logger=_quiet,
        )
        self._request_data(self.ws, data)

    def eof_received(self) -> bool:
        if self.ws is not None:
            self.ws.receive_eof()
            self._flush_http(self.ws)
        else:
            self.state = CLOSED  # an end without a close frame is abnormal: close too
        return False

    def pause_writing(self) -> None:
        if self.receiver is not None:
            self.receiver.writing_paused()

    def resume_writing(self) -> None:
        if self.receiver is not None:
            self.receiver.writing_resumed()

    def connection_lost(self, exc: Exception | None) -> None:
        if self in self.web.peers and self.receiver is None:
            self.web.let_go(self.peer)  # it ended before it became a session
        self.web.peers.discard(self)
        self.state = CLOSED
        self.frames = None
        if self._close_timer is not None:
            self._close_timer.cancel()
        receiver, self.receiver = self.receiver, None
        if receiver is not None:
            receiver.lost(exc)

    # the request --------------------------------------------------------------------

    def _request_data(self, ws: ServerProtocol, data: bytes) -> None:
        ws.receive_data(data)
        events = ws.events_received()
        if events and isinstance(events[0], Request):
            self._answer(ws, events[0])
            if self.state != HTTP and (len(events) > 1 or ws.reader.buffer):
                # RFC 6455 section 4.1: a client waits for the 101 before it sends frames
                self._fail(PROTOCOL_ERROR, "frames sent before the handshake was answered")
        if self.state == HTTP:
            self._flush_http(ws)

    def _answer(self, ws: ServerProtocol, request: Request) -> None:
        policy = self.web.policy
        host = _header(request, "Host")
        response: Response
        if host is None or not policy.host_ok(host):
            log.info("web %s: refused Host %r", self.peer, host)
            response = plain_response(HTTPStatus.MISDIRECTED_REQUEST, "unknown Host\n")
        elif request.path.partition("?")[0] == WS_PATH:
            origin = _header(request, "Origin")
            if not policy.origin_ok(origin, host):
                log.warning("web %s: refused WebSocket from Origin %r", self.peer, origin)
                response = plain_response(HTTPStatus.FORBIDDEN, "Origin not allowed\n")
            else:
                response = ws.accept(request)
        else:
            response = page_response(
                request, self.web.assets, content_security_policy(policy.scheme, host)
            )
        ws.send_response(response)
        if response.status_code == 101:
            self._flush_http(ws)
            self.ws = None  # its parser, buffers and the request are freed
            self.state = OPEN
            self.frames = FrameReader()
            self.receiver = self.web.open_session(self)
            self.web.let_go(self.peer)  # from here the server's caps count it

    def _flush_http(self, ws: ServerProtocol) -> None:
        """Write the answer; python-websockets' empty write means: half-close."""
        for data in ws.data_to_send():
            if data:
                self.write(data)
            else:
                self._half_close()
        if ws.close_expected():
            self._close_soon()

    # WebSocket frames ---------------------------------------------------------------

    def _read(self) -> None:
        """Hand on what the reader has, until it needs more or the session pauses."""
        max_message = self.web.max_message
        try:
            while not self.reading_paused and (frames := self.frames) is not None:
                event = frames.next_event(max_message)
                if event is None:
                    return
                opcode, payload = event
                if opcode == BINARY:
                    if self.state == OPEN and self.receiver is not None:
                        self.receiver.message_data(payload)
                elif opcode == PING:
                    if self.state == OPEN:
                        self.write(pong_frame(payload))
                elif opcode == PONG:
                    self.last_pong = self.web.loop.time()
                elif opcode == CLOSE:
                    self._close_received(payload)
        except FrameError as exc:
            log.info("web %s: bad WebSocket frame: %s", self.peer, exc.reason)
            self._fail(exc.code, exc.reason)

    def _close_received(self, payload: bytes) -> None:
        """The client's close frame: answer it (echoing its code) unless it answers ours;
        the closing handshake is then done and the TCP close follows (section 7.1.1)."""
        code, _reason = parse_close(payload)
        if self.state == OPEN:
            self.write(close_frame(code) if code is not None else frame_header(FIN | CLOSE, 0))
        self._finish()

    def _fail(self, code: int, reason: str) -> None:
        """Fail the connection (section 7.1.7): a close frame saying why, then TCP's close."""
        if self.state == OPEN:
            self.write(close_frame(code, reason))
        self._finish()

    def _finish(self) -> None:
        self.state = CLOSED
        self.frames = None
        self._half_close()
        self._close_soon()

    def _close_soon(self) -> None:
        """A client that does not end the connection within ``close_timeout`` is cut off."""
        if self._close_timer is None:
            self._close_timer = self.web.loop.call_later(self.web.close_timeout, self.abort)

    def _half_close(self) -> None:
        """Close our side after what is written; the client's EOF ends the connection."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if transport.can_write_eof():
            transport.write_eof()
        else:
            transport.close()  # TLS cannot half-close: close after what is written

    # what the session uses ----------------------------------------------------------

    def pause_reading(self) -> None:
        """Deliver nothing more until ``resume_reading`` (the session's backpressure)."""
        self.reading_paused = True
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        self.reading_paused = False
        self._read()
        if not self.reading_paused and self.transport is not None:
            self.transport.resume_reading()

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def ping(self) -> None:
        if self.state == OPEN:
            self.write(PING_FRAME)

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake; the TCP close follows it (or a timeout)."""
        if self.state == OPEN:
            self.write(close_frame(code, reason))
            self.state = CLOSING
            self._close_soon()
        elif self.state == HTTP and self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        if self.state != HTTP:
            self.state = CLOSED
        if self.transport is not None:
            with contextlib.suppress(OSError):
                self.transport.abort()
