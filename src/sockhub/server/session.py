"""``ServerSession``: one client of the framed protocol, whatever carries its bytes.

The session owns everything that does not depend on the transport: the decoder and the
per-op body policy, admission, the authenticated user, timers, counted pause reasons
and close. Two halves are base classes of it, so the hot paths keep plain attribute
accesses: the requests (an op admitted and run, in flight with or without an id, a
streamed body's sink, a failure answered) are ``Requests`` in ``server/requests.py``,
and the outbound queue (frames and file bodies, in order, with its backlog limits) is
``Outbound`` in ``server/outbound.py``. A transport adapter is a thin shell
around it (``server/stream.py`` for TCP, TLS and UNIX; the WebSocket bridge); the
split follows python-websockets' sans-I/O ``Protocol`` and thin asyncio ``Connection``.

How an adapter plugs in (this is the stable seam):

1. Make the session: ``session = ServerSession(server, link, kind, peer)``. ``link``
   is the adapter itself, implementing :class:`Link` (write, buffered, pause/resume
   reading, write_eof, close, abort, socket_fd). ``kind`` names the transport in logs
   ("tcp", "tls", "unix", "ws"); ``peer`` is the source address.
2. Admission: ``session.admit()`` counts the connection against the total and
   per-address caps and returns the refusal (a fatal ``ProtocolError``) or None. Call it
   as early as possible (TLS: at accept, before the handshake). Then ``session.open()``
   sends ``hello`` (it admits first if ``admit`` was not called; a refused session is
   told why and closed, and ``open`` returns False).
3. Bytes in: a byte stream goes to ``session.receive_data(data)`` in pieces of any size.
   A transport that carries whole messages (one WebSocket message per frame) calls
   ``session.receive_frame(data)`` instead: ``data`` must hold whole frames (one, as
   PROTOCOL.md section 1 asks); a message that ends inside a frame is a fatal
   ``frame.bad``. An ``asyncio.BufferedProtocol`` adapter may
   forward ``get_buffer``/``buffer_updated`` to let streamed bodies land in their sink's
   buffers without a copy. The end of the peer's input is ``session.receive_eof()``
   (True: keep the transport half-open while replies finish).
4. Bytes out: the session calls ``link.write(data)``. Each call begins at a frame
   boundary and carries whole frames, except that a file body may follow its header
   in later calls (several MiB, in pieces) before the next frame. A message transport
   that must carry one frame per message (the WebSocket bridge, PROTOCOL.md section
   1) re-splits the stream at frame boundaries, e.g. with a ``protocol.frames.Decoder``
   fed what ``write`` gets. ``link.socket_fd()`` returns a socket descriptor
   when file bodies may go out with ``os.sendfile``, else None (they are read and
   written through ``link.write``).
5. Flow control: when the link's own buffer is over its high-water mark the adapter
   calls ``session.pause_writing()`` and ``session.resume_writing()`` once below again
   (asyncio's protocol callbacks map one to one). The session calls
   ``link.pause_reading()``/``link.resume_reading()`` as its pause reasons come and go;
   the adapter must stop delivering input while paused.
6. Close: the session ends the link with ``link.write_eof()`` (a half-close after a
   fatal error frame; return False if the transport cannot, and the session closes it
   instead), ``link.close()`` (graceful: after what is buffered) or ``link.abort()``
   (at once). Whoever ends the transport, the adapter calls
   ``session.connection_lost(exc)`` exactly once when it is gone; the session then
   cancels its tasks, aborts its sinks, runs ``on_close`` callbacks and is uncounted.

Services see the session through ``server.service.Session`` only.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from ..protocol.errors import (
    FrameBad,
    FrameTooLarge,
    LimitIdle,
    LimitSlowConsumer,
    ProtocolError,
    error_header,
)
from ..protocol.frames import BodyChunk, Decoder, Frame, FrameStart
from ..protocol.sniff import describe_foreign, lab_hint
from ..protocol.text import escape
from .outbound import Link
from .reads import BodyReads, read_buffer
from .requests import Requests

if TYPE_CHECKING:
    from .app import Server

__all__ = ["Link", "ServerSession"]

log = logging.getLogger("sockhub.server")

# the session's own pause reasons (and outbound.WRITE); a service pauses under its own owner
DONE = "done"
"""The client said bye or sent EOF: nothing more is read."""
BUDGET = "budget"
"""The frame being read needs room in the server's body budget."""

_SPENT = Decoder()
"""Stands in for a closed session's decoder, which is never fed again."""

_SMALL_BODY = 64 * 1024
"""Bodies up to this size are not drawn from the body budget: each session's read
size bounds them already, and the hot path of small requests stays lean."""
_SNIFF = 64
"""First bytes kept to name a foreign protocol in the log."""


class ServerSession(Requests):
    __slots__ = (
        "_close_callbacks",
        "_done",
        "_eof_callbacks",
        "_first",
        "_funded",
        "_pauses",
        "_reads",
        "_receiving",
        "_started",
        "_unfunded",
        "admitted",
        "decoder",
        "grants",
        "key",
        "last_data",
        "last_frame",
        "nonce",
        "opened",
        "spoke",
        "user",
    )

    def __init__(self, server: Server, link: Link, kind: str, peer: str) -> None:
        super().__init__(server, link, kind, peer)
        self.user: str | None = None
        self.key: bytes | None = None
        """The key the user authenticated with: a changed key ends the session."""
        self.grants: frozenset[str] = server.anonymous_grants
        self.admitted = False
        self._done = False
        self._started = False
        self._receiving = False
        self._pauses: dict[object, int] | None = None
        self._close_callbacks: list[Callable[[], object]] | None = None
        self._eof_callbacks: list[Callable[[], object]] | None = []
        self._reads = BodyReads()
        self._first: bytes | None = b""
        self._funded = 0
        """Bytes of the body budget the frame being read holds."""
        self._unfunded = 0
        """Bytes the frame being read waits for in the body budget (reading paused)."""
        self.decoder = Decoder(max_header=server.limits.max_header, policy=self._body_policy)
        self.nonce = b""
        self.opened = self.last_data = self.last_frame = self._loop.time()
        self.spoke = False

    # the adapter's side ---------------------------------------------------------------

    def admit(self) -> ProtocolError | None:
        """Count this session against the connection caps, or return why it is refused."""
        if self.admitted:
            return None
        refusal = self.server.admit(self)
        self.admitted = refusal is None
        return refusal

    def open(self) -> bool:
        """Send ``hello``; False (and closing, the client told why) when refused."""
        self._started = True
        refusal = self.admit()
        if refusal is not None:
            log.warning("refused %s %s: %s", self.kind, self.peer, refusal.message)
            self.close(refusal)
            return False
        self.nonce = self.server.new_nonce()
        self.send(self.server.hello_header(base64.b64encode(self.nonce).decode()))
        self._flush()
        log.info("open %s %s", self.kind, self.peer)
        return True

    def get_buffer(self, sizehint: int) -> memoryview:
        """Where the next read lands (``BodyReads``): a streamed body into its sink's own
        buffers, anything else into the thread's read buffer."""
        return self._reads.buffer(self._sink, self.decoder.body_left)

    def buffer_updated(self, nbytes: int) -> None:
        view = self._reads.landed(nbytes)
        if view is None:
            self.receive_data(bytes(read_buffer()[:nbytes]))
            return
        if self._closing or self._sink is None:
            return
        self.decoder.body_received(nbytes)
        self._sink.write(view)
        self.receive_data(b"")  # the body's end, once all of it is in

    def receive_frame(self, data: bytes) -> None:
        """One whole frame from a message transport (a WebSocket message)."""
        self.receive_data(data)
        if not self._closing and self.decoder.in_frame:
            self._bad_frame(FrameBad("a message must hold exactly one whole frame"))

    def receive_data(self, data: bytes) -> None:
        if self._closing:
            return
        now = self._loop.time()
        self.last_data = now
        if self._first is not None and len(self._first) < _SNIFF:
            self._first += data[: _SNIFF - len(self._first)]
        decoder = self.decoder
        decoder.receive_data(data)
        self._receiving = True
        complete = False
        try:
            while (event := decoder.next_event()) is not None:
                cls = event.__class__
                if cls is Frame:
                    complete = True
                    if self._funded or self._unfunded:
                        self._settle_body()
                    self._on_frame(event.header, event.body)  # type: ignore[union-attr]
                elif cls is BodyChunk:
                    if self._sink is not None:
                        self._sink.write(event.data)  # type: ignore[union-attr]
                elif cls is FrameStart:
                    self._on_stream_start(event.header)  # type: ignore[union-attr]
                else:
                    complete = True
                    self._on_stream_end()
                if self._closing or self._done:
                    break  # after a fatal error or bye nothing more is read
        except (FrameBad, FrameTooLarge) as exc:
            self._bad_frame(exc)
        finally:
            self._receiving = False
        if complete:
            self.last_frame = now
            self.spoke = True
            self._first = None
        self._flush()

    def receive_eof(self) -> bool:
        if self._closing:
            return False
        if self._first is not None and self._first:
            self._note_foreign(complete=True)
        if self.decoder.in_frame:
            return False  # a frame cut off for good (a dropped upload): close, do not wait
        self.finish()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        if self._lost:
            return
        self._lost = True
        self.closed = self._closing = True
        if self._sink is not None:
            sink, self._sink = self._sink, None
            self._guarded(sink.abort)
        self._settle_body()
        self._drop_outbound()
        if self._tasks:
            for task in self._tasks:
                task.cancel()
        callbacks, self._close_callbacks = self._close_callbacks, None
        for callback in callbacks or ():
            self._guarded(callback)
        if self.admitted:
            self.server.forget(self)
        self.decoder = _SPENT  # the decoder's policy refers back to us: break the cycle
        log.info("close %s %s%s", self.kind, self.peer, f" user={self.user}" if self.user else "")

    # what services use (server.service.Session) ----------------------------------

    def pause_reading(self, owner: object) -> None:
        """Stop reading for ``owner``; counted, so each pause needs its own resume."""
        pauses = self._pauses
        if pauses is None:
            pauses = self._pauses = {}
            if not self._closing:
                self.link.pause_reading()
        pauses[owner] = pauses.get(owner, 0) + 1

    def resume_reading(self, owner: object) -> None:
        pauses = self._pauses
        count = pauses.get(owner, 0) if pauses is not None else 0
        if not count or pauses is None:
            return
        if count > 1:
            pauses[owner] = count - 1
            return
        del pauses[owner]
        if not pauses:
            self._pauses = None
            # the stall and idle clocks stood still while the server was not reading
            self.last_data = self.last_frame = self._loop.time()
            if not self._closing:
                self.link.resume_reading()

    def on_close(self, callback: Callable[[], object]) -> None:
        if self._lost:
            self._guarded(callback)
            return
        if self._close_callbacks is None:
            self._close_callbacks = []
        self._close_callbacks.append(callback)

    def on_eof(self, callback: Callable[[], object]) -> None:
        if self._eof_callbacks is None:
            self._guarded(callback)  # the client has already finished sending (EOF or bye)
        else:
            self._eof_callbacks.append(callback)

    def spawn(self, coro: Coroutine[Any, Any, object]) -> asyncio.Task[object]:
        task: asyncio.Task[object] = self._loop.create_task(coro)
        self._own(task)
        if self._lost:
            task.cancel()
        return task

    def authenticated(self, user: str, key: bytes, grants: frozenset[str]) -> None:
        self.user = user
        self.key = key
        self.grants = grants

    def finish(self) -> None:
        """Stop reading (EOF or bye); close gracefully once every running request has answered."""
        if not self._done:
            self._done = True
            self._hold(DONE)
            callbacks, self._eof_callbacks = self._eof_callbacks, None
            for callback in callbacks or ():
                self._guarded(callback)
        if not self._requests and not self._closing:
            self._flush()
            if self._queue is None:
                self.closed = self._closing = True
                self.link.close()

    def close(self, exc: BaseException | None = None) -> None:
        """Close, sending ``exc`` first as a fatal error when it is a protocol error.

        After a fatal error the link half-closes and lingers, discarding input, so the
        kernel does not answer unread input with a reset that destroys the error frame.
        A slow consumer, or a file body half sent, is aborted instead: no frame can
        follow.
        """
        if self._closing:
            return
        if isinstance(exc, ProtocolError):
            exc.fatal = True
            if self._queue is None:
                self.send(error_header(exc))
        self.closed = self._closing = True
        if isinstance(exc, LimitSlowConsumer) or self._queue is not None or not self._started:
            self._abort()
            return
        self._flush(final=True)
        if self._pauses is not None:
            self._pauses = None
            self.link.resume_reading()
        self._linger_close()

    # internals --------------------------------------------------------------------

    def _hold(self, reason: str) -> None:
        """Pause for one of the session's own reasons (each held at most once)."""
        if self._pauses is None or reason not in self._pauses:
            self.pause_reading(reason)

    def _release(self, reason: str) -> None:
        self.resume_reading(reason)

    def _guarded(self, callback: Callable[[], object]) -> None:
        try:
            callback()
        except Exception:
            log.exception("cleanup for %s %s failed", self.kind, self.peer)

    def _note_foreign(self, complete: bool) -> None:
        first, self._first = self._first, None
        what = describe_foreign(first or b"", complete=complete)
        if what is not None:
            log.warning(
                "%s %s is not speaking sockhub: it sent %s; %s",
                self.kind,
                self.peer,
                escape(what, 120),
                _hint(what, self.kind),
            )

    def _bad_frame(self, exc: FrameBad | FrameTooLarge) -> None:
        if self._first is not None:
            self._note_foreign(complete=False)
        log.info("%s %s sent a bad frame: %s", self.kind, self.peer, exc.message)
        self.close(exc)

    def _body_policy(self, header: dict[str, Any]) -> tuple[int, bool]:
        op = header.get("op")  # any JSON value: a list or an object must not reach .get()
        spec = self.server.ops.get(op) if op.__class__ is str else None
        if spec is not None:
            plan = spec.body(self, header)
            if plan is not None:
                return plan
        limit = self.server.limits.max_body
        size = header.get("size")
        if size.__class__ is int and _SMALL_BODY < size <= limit:
            self._fund(size)
        return (limit, False)

    def _fund(self, size: int) -> None:
        """Draw a buffered body from the server's budget, or stop reading until it fits."""
        if self.server.bodies.take(size):
            self._funded = size
            return
        self._unfunded = size
        self._hold(BUDGET)
        self.server.bodies.wait(self._retry_fund)

    def _retry_fund(self) -> bool:
        size = self._unfunded
        if not size or self._lost:
            return True
        if not self.server.bodies.take(size):
            return False
        self._funded, self._unfunded = size, 0
        self._release(BUDGET)
        return True

    def _settle_body(self) -> None:
        """The body is read (or never will be): its budget goes back."""
        if self._funded:
            self.server.bodies.give(self._funded)
            self._funded = 0
        if self._unfunded:
            self._unfunded = 0
            self.server.bodies.forget(self._retry_fund)
            self._release(BUDGET)

    def check_timers(self, now: float) -> None:
        """Called about once a second by the server: send, backlog, handshake, stall and
        idle timeouts. Stall and idle do not run while the server is not reading."""
        if self._closing:
            return
        if self._charged:
            self.account()  # the client read: give back what left
        limits = self.server.limits
        if self.write_paused_at is not None and now - self.write_paused_at > limits.send_timeout:
            self.close(LimitSlowConsumer(f"nothing could be sent for {limits.send_timeout:g} s"))
        elif self.over_soft_since is not None:
            self.account()
        elif self._pauses is not None:
            return
        elif not self.spoke and now - self.opened > limits.handshake_timeout:
            if self._first:
                self._note_foreign(complete=True)
            self.close(LimitIdle(f"no complete frame within {limits.handshake_timeout:g} s"))
        elif self.decoder.in_frame and now - self.last_data > limits.handshake_timeout:
            self.close(LimitIdle(f"frame stalled for {limits.handshake_timeout:g} s"))
        elif now - self.last_frame > limits.idle_timeout and not self._requests:
            self.close(LimitIdle(f"idle for {limits.idle_timeout:g} s; send ping to stay"))


def _hint(what: str, kind: str) -> str:
    """What the operator can tell the person behind a foreign client."""
    if what.startswith("HTTP"):
        return "browsers: use the web port"
    if what.startswith("a TLS"):
        return "the client speaks TLS: start the server with --tls"
    if what.startswith(("raw text", "a little-endian", "a decimal")):
        return f"course programs: use {lab_hint()}; sockhub clients connect here"
    return "sockhub clients connect here; other programs need their own port"
