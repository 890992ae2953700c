"""``POST /up/<token>``: an upload's body over plain HTTP, beside its WebSocket session.

A browser streams a ``fetch`` body straight from a picked ``File`` without it ever
entering JavaScript, which a WebSocket cannot do (every message is read into the page,
then copied by ``send``). So the page may send an upload's body this way, with the
one-time token its session's ``file.ready`` gave (docs/PROTOCOL.md sections 1 and 7);
the control (``file.put``, ``file.end`` with the sha256, the reply) stays on the socket.

The request's head is parsed by h11 (the web port's GETs stay with python-websockets'
sans-IO handshake, which serves GET only); once h11 has handed over the body bytes that
came with the head, the rest of the body is read past it, straight into the spool's
buffers (``server.reads.BodyReads``), as a ``file.data`` body is: h11 would copy every
read twice more. The body goes into the same sink as ``file.data``: its quota, limits
and spool, and its backpressure, which pauses reading this socket instead of the
session's. One request per connection; every answer closes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from http import HTTPStatus
from typing import TYPE_CHECKING

import h11

from ..protocol.errors import FileTooLarge, LimitBusy, ProtocolError
from ..server.reads import BodyReads, read_buffer
from ..server.service import BodySink

if TYPE_CHECKING:
    from .listener import WebListener

__all__ = ["UP_PATH", "PostPeer"]

log = logging.getLogger("sockhub.web")

UP_PATH = "/up/"
MAX_HEAD = 16 * 1024
"""Bytes a request's head may take (h11 refuses a longer one)."""

_STATUS = {
    FileTooLarge: HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
    LimitBusy: HTTPStatus.SERVICE_UNAVAILABLE,
}


def _header(request: h11.Request, name: bytes) -> str | None:
    """One header's value (h11 gives names lower-cased); a repeated one counts as missing."""
    values = [value for key, value in request.headers if key == name]
    return values[0].decode("latin-1") if len(values) == 1 else None


class PostPeer(asyncio.BufferedProtocol):
    """One connection carrying one ``POST /up/<token>``, from its first bytes to its answer.

    Made by ``WebPeer`` when a connection's first bytes are a POST: the transport is
    handed over (``set_protocol``), so WebSocket connections keep no state for this."""

    def __init__(self, web: WebListener, transport: asyncio.Transport, peer: str) -> None:
        self.web = web
        self.transport = transport
        self.peer = peer
        self.http = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
        self.sink: BodySink | None = None
        """Where the body goes, from an accepted head to its end (or the upload's)."""
        self.left = 0
        """Body bytes still to come, from an accepted head on."""
        self.raw = False
        """h11 has handed over all it read: the rest of the body is read past it."""
        self._reads = BodyReads()
        self.answered = False
        self.paused = False
        self.last_data = web.loop.time()
        """When bytes last came: a body that stalls is cut off (``WebListener._sweep``)."""
        self._close_timer: asyncio.TimerHandle | None = None
        web.posts.add(self)

    # asyncio.BufferedProtocol -------------------------------------------------------

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._reads.buffer(self.sink, self.left if self.raw else 0)

    def buffer_updated(self, nbytes: int) -> None:
        view = self._reads.landed(nbytes)
        self.last_data = self.web.loop.time()
        if self.answered:
            return  # the rest of a refused body: read and dropped until the client closes
        if not self.raw:
            self.feed(bytes(read_buffer()[:nbytes]))
        elif view is not None:
            self._body(view)
        else:  # the sink lent no buffer; anything past the body is dropped
            self._body(bytes(read_buffer()[: min(nbytes, self.left)]))

    def feed(self, data: bytes) -> None:
        """Bytes for h11: the head, and any body bytes read with it."""
        self.http.receive_data(data)
        try:
            while not self.answered:
                event = self.http.next_event()
                if event is h11.NEED_DATA or event is h11.PAUSED:
                    self.raw = self.sink is not None
                    return
                if isinstance(event, h11.Request):
                    self._start(event)
                elif isinstance(event, h11.Data):
                    self._body(event.data)
                elif isinstance(event, h11.EndOfMessage):
                    self._finish()
        except h11.RemoteProtocolError as exc:  # 431 for a head over MAX_HEAD, else 400
            status = HTTPStatus(exc.error_status_hint)
            self._refuse(status, "bad.request", f"bad HTTP request: {exc}")

    def eof_received(self) -> bool:
        return False  # a body cut short is the upload's end: connection_lost says so

    def connection_lost(self, exc: Exception | None) -> None:
        self.web.posts.discard(self)
        self.web.let_go(self.peer)  # held since its first bytes came to a WebPeer
        if self._close_timer is not None:
            self._close_timer.cancel()
        sink, self.sink = self.sink, None
        if sink is not None:
            sink.abort()

    # the request ----------------------------------------------------------------------

    def _start(self, request: h11.Request) -> None:
        """Check the head as the WebSocket upgrade is checked, then claim the upload."""
        policy = self.web.policy
        host = _header(request, b"host")
        target = request.target.decode("latin-1")
        if host is None or not policy.host_ok(host):
            log.info("web %s: refused Host %r", self.peer, host)
            self._refuse(HTTPStatus.MISDIRECTED_REQUEST, "bad.request", "unknown Host")
        elif not target.startswith(UP_PATH):
            self._refuse(
                HTTPStatus.METHOD_NOT_ALLOWED,
                "bad.request",
                "only GET and HEAD here; an upload's body is POSTed to /up/<token>",
                (("Allow", "GET, HEAD"),),
            )
        elif not policy.origin_ok(origin := _header(request, b"origin"), host):
            log.warning("web %s: refused upload POST from Origin %r", self.peer, origin)
            self._refuse(HTTPStatus.FORBIDDEN, "bad.request", "Origin not allowed")
        elif (size := _length(request)) is None:
            self._refuse(
                HTTPStatus.LENGTH_REQUIRED, "bad.request", "the body needs a Content-Length"
            )
        else:
            self._claim(target.removeprefix(UP_PATH), size)

    def _claim(self, token: str, size: int) -> None:
        uploads = self.web.uploads
        try:
            sink = uploads.claim(token, size, self._pressure, self._detach) if uploads else None
        except ProtocolError as exc:
            status = _STATUS.get(type(exc), HTTPStatus.BAD_REQUEST)
            self._refuse(status, exc.code, exc.message)
            return
        if sink is None:
            self._refuse(HTTPStatus.NOT_FOUND, "bad.request", "no upload waits for this token")
        else:
            self.sink, self.left = sink, size

    def _body(self, chunk: bytes | memoryview) -> None:
        if self.sink is not None:
            self.left -= len(chunk)
            self.sink.write(chunk)
            if not self.left:
                self._finish()

    def _finish(self) -> None:
        """The whole body is in the sink: the upload waits for file.end on the socket."""
        sink, self.sink = self.sink, None
        if sink is None:
            return
        sink.end()
        self._answer(HTTPStatus.NO_CONTENT, b"")

    # what the upload calls --------------------------------------------------------------

    def _pressure(self, on: bool) -> None:
        """The spool has more than its high-water mark queued (True) or has caught up."""
        self.paused = on
        if self.transport.is_closing():
            return
        if on:
            self.transport.pause_reading()
        else:
            self.transport.resume_reading()

    def _detach(self) -> None:
        """The upload is over (done, failed, its session gone): nothing more goes to it."""
        if self.sink is not None:
            self.sink = None
            self._refuse(HTTPStatus.GONE, "bad.request", "the upload ended; its file.put says why")

    # answers ------------------------------------------------------------------------

    def _refuse(
        self, status: HTTPStatus, code: str, message: str, extra: tuple[tuple[str, str], ...] = ()
    ) -> None:
        """An error answer (JSON ``{"code", "message"}``); the upload is left as it was
        unless the refusal came from it."""
        body = json.dumps({"code": code, "message": message}).encode()
        self._answer(status, body, extra)

    def _answer(
        self, status: HTTPStatus, body: bytes, extra: tuple[tuple[str, str], ...] = ()
    ) -> None:
        """Write the answer and half-close; what the client still sends is read and
        dropped until it closes (so it sees the answer, not a reset), or a timeout."""
        if self.answered:
            return
        self.answered = True
        if self.paused:
            self._pressure(False)
        headers = [
            *extra,
            ("Connection", "close"),
            ("Cache-Control", "no-store"),
            ("X-Content-Type-Options", "nosniff"),
        ]
        if body:
            headers += [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        events: list[h11.Event] = [
            h11.Response(status_code=status.value, headers=headers, reason=status.phrase)
        ]
        if body:
            events.append(h11.Data(data=body))
        events.append(h11.EndOfMessage())
        try:
            out = b"".join(self.http.send(event) or b"" for event in events)
        except h11.LocalProtocolError:
            out = b""  # the request could not be parsed far enough to answer it
        transport = self.transport
        if transport.is_closing():
            return
        transport.write(out)
        if transport.can_write_eof():
            transport.write_eof()
        else:
            transport.close()
        self._close_timer = self.web.loop.call_later(self.web.close_timeout, self.abort)

    def abort(self) -> None:
        with contextlib.suppress(OSError):
            self.transport.abort()


def _length(request: h11.Request) -> int | None:
    """The body's Content-Length; None when it is chunked or not given (h11 has checked
    that a given one is a number and that there is one)."""
    if _header(request, b"transfer-encoding") is not None:
        return None
    value = _header(request, b"content-length")
    return int(value) if value is not None else None
