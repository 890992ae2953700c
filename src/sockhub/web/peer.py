"""One TCP (or TLS) connection on the web port: an HTTP request, then maybe a WebSocket.

python-websockets' sans-IO ``ServerProtocol`` does the parsing (request, frames, ping
and pong, close); this asyncio protocol feeds it bytes, answers the request (a page file,
a refusal, or the upgrade), and after the upgrade hands each binary message's bytes to
the session that runs sockhub on top.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from http import HTTPStatus
from typing import TYPE_CHECKING, Protocol

from websockets.datastructures import MultipleValuesError
from websockets.frames import CloseCode, Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import OPEN
from websockets.server import ServerProtocol

from .http import WS_PATH, content_security_policy, page_response, plain_response

if TYPE_CHECKING:
    from .listener import WebListener

__all__ = ["SUBPROTOCOL", "MessageReceiver", "WebPeer"]

log = logging.getLogger("sockhub.web")
_quiet = logging.getLogger("sockhub.web.websockets")
_quiet.setLevel(logging.WARNING)

SUBPROTOCOL = "sockhub.v1"
_FRAGMENT = 256 * 1024
"""Outbound messages longer than this go out as several WebSocket frames."""


class MessageReceiver(Protocol):
    """What runs on top of an open WebSocket (the sockhub session adapter)."""

    def message_data(self, data: bytes | bytearray | memoryview) -> None:
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
    def __init__(self, web: WebListener) -> None:
        self.web = web
        self.ws = ServerProtocol(
            subprotocols=[SUBPROTOCOL],  # type: ignore[list-item]
            max_size=web.max_message,
            logger=_quiet,
        )
        self.transport: asyncio.Transport | None = None
        self.peer = ""
        self.receiver: MessageReceiver | None = None
        self.opened = web.loop.time()
        self.last_pong = self.last_ping_sent = self.opened
        self.write_paused = False
        self.reading_paused = False
        self._held: deque[Frame] = deque()
        """Frames parsed from a read that arrived after the session paused reading."""
        self._close_timer: asyncio.TimerHandle | None = None

    # asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.peer = str(peer[0]) if isinstance(peer, tuple) else "?"
        self.web.peers.add(self)

    def data_received(self, data: bytes) -> None:
        self.ws.receive_data(data)
        for event in self.ws.events_received():
            if isinstance(event, Request):
                self._answer(event)
            elif isinstance(event, Frame):
                if self.reading_paused or self._held:
                    self._held.append(event)
                else:
                    self._on_frame(event)
        self.flush()

    def eof_received(self) -> bool:
        self.ws.receive_eof()
        self.flush()
        return False

    def pause_writing(self) -> None:
        self.write_paused = True
        if self.receiver is not None:
            self.receiver.writing_paused()

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.receiver is not None:
            self.receiver.writing_resumed()

    def connection_lost(self, exc: Exception | None) -> None:
        self.web.peers.discard(self)
        if self._close_timer is not None:
            self._close_timer.cancel()
        receiver, self.receiver = self.receiver, None
        if receiver is not None:
            receiver.lost(exc)

    # the request --------------------------------------------------------------------

    def _answer(self, request: Request) -> None:
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
                response = self.ws.accept(request)
        else:
            response = page_response(
                request, self.web.assets, content_security_policy(policy.scheme, host)
            )
        self.ws.send_response(response)
        if response.status_code == 101:
            self.flush()
            self.receiver = self.web.open_session(self)

    # WebSocket frames ---------------------------------------------------------------

    def _on_frame(self, frame: Frame) -> None:
        receiver = self.receiver
        opcode = frame.opcode
        if opcode is Opcode.BINARY or opcode is Opcode.CONT:
            if receiver is not None and frame.data:
                receiver.message_data(frame.data)
        elif opcode is Opcode.TEXT:
            self.close(CloseCode.UNSUPPORTED_DATA, "sockhub.v1 speaks binary messages only")
        elif opcode is Opcode.PONG:
            self.last_pong = self.web.loop.time()

    # what the session uses ----------------------------------------------------------

    @property
    def open(self) -> bool:
        return self.ws.state is OPEN

    def send_message(self, data: bytes | bytearray | memoryview) -> None:
        """One binary message; long ones in several frames so no single frame is huge."""
        if self.ws.state is not OPEN:
            return
        view = memoryview(data)
        if len(view) <= _FRAGMENT:
            self.ws.send_binary(view)
            return
        self.ws.send_binary(view[:_FRAGMENT], fin=False)
        for start in range(_FRAGMENT, len(view), _FRAGMENT):
            self.ws.send_continuation(
                view[start : start + _FRAGMENT], fin=start + _FRAGMENT >= len(view)
            )

    def pause_reading(self) -> None:
        """Deliver nothing more until ``resume_reading`` (the session's backpressure)."""
        self.reading_paused = True
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        self.reading_paused = False
        held = self._held
        while held and not self.reading_paused:
            self._on_frame(held.popleft())
        if not self.reading_paused and self.transport is not None:
            self.transport.resume_reading()
        self.flush()

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def flush(self) -> None:
        """Write what the WebSocket layer produced; its empty write means: half-close."""
        transport = self.transport
        if transport is None:
            return
        for data in self.ws.data_to_send():
            if data:
                self.write(data)
            elif transport.is_closing():
                pass
            elif transport.can_write_eof():
                transport.write_eof()
            else:
                transport.close()  # TLS cannot half-close: close after what is written
        if self.ws.close_expected() and self._close_timer is None:
            self._close_timer = self.web.loop.call_later(self.web.close_timeout, self.abort)

    def ping(self) -> None:
        if self.ws.state is OPEN:
            self.ws.send_ping(b"")
            self.flush()

    def close(self, code: int = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
        """Start the closing handshake; the TCP close follows it (or a timeout)."""
        if self.ws.state is OPEN:
            self.ws.send_close(code, reason)
            self.flush()
        elif self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            with contextlib.suppress(OSError):
                self.transport.abort()
