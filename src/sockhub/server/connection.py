"""One client connection on a stream transport (TCP, TLS, UNIX): the hot path.

An ``asyncio.Protocol`` rather than streams: frames are decoded straight from
``data_received`` and every frame queued during one event-loop turn leaves in one
write, which is what lets a Python server keep up with pipelined clients and fan-out.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import socket
import struct
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any

from ..protocol.errors import (
    BadRequest,
    FrameBad,
    FrameTooLarge,
    Internal,
    LimitIdle,
    LimitSlowConsumer,
    OpUnknown,
    ProtocolError,
    error_header,
)
from ..protocol.fields import get_id
from ..protocol.frames import BodyChunk, Decoder, Frame, FrameStart, encode_header_into
from ..protocol.text import escape
from .sendfile import send_copied, send_zero_copy
from .service import BodySink, ConnectionClosed, OpSpec, Request

if TYPE_CHECKING:
    from .app import Server

__all__ = ["Connection", "ConnectionClosed"]

log = logging.getLogger("sockhub.server")

_LINGER_ABORT = struct.pack("ii", 1, 0)


# reasons to stop reading a client, as bits: reading resumes when none is left
_PAUSE_WRITE = 1
_PAUSE_INFLIGHT = 2
_PAUSE_SERVICE = 4
_PAUSE_DONE = 8

_SPENT = Decoder()
"""Stands in for a closed connection's decoder, which is never fed again."""


_READ_SIZE = 256 * 1024
_reads = threading.local()


def _read_buffer() -> memoryview:
    """One read buffer per thread (per event loop): data is copied out of it at once."""
    view: memoryview | None = getattr(_reads, "view", None)
    if view is None:
        view = _reads.view = memoryview(bytearray(_READ_SIZE))
    return view


class Connection(asyncio.BufferedProtocol):
    __slots__ = (
        "_body_view",
        "_close_callbacks",
        "_closing",
        "_drain_waiters",
        "_eof_callbacks",
        "_flush_scheduled",
        "_held",
        "_inflight",
        "_linger",
        "_loop",
        "_out",
        "_paused",
        "_receiving",
        "_sink",
        "_sink_req",
        "_tasks",
        "closed",
        "decoder",
        "grants",
        "kind",
        "last_data",
        "last_frame",
        "nonce",
        "opened",
        "peer",
        "server",
        "spoke",
        "transport",
        "user",
        "write_paused_at",
    )

    def __init__(self, server: Server, kind: str) -> None:
        self.server = server
        self.kind = kind
        self._loop = server.loop
        self.transport: asyncio.Transport | None = None
        self.peer = ""
        self.user: str | None = None
        self.grants: frozenset[str] = server.anonymous_grants
        self.closed = False
        self._closing = False
        self._out = bytearray()
        self._held: bytearray | None = None  # frames queued while a file body is being sent
        self._flush_scheduled = False
        self._receiving = False
        self._paused = 0
        self._inflight: dict[int, asyncio.Task[None]] | None = None
        self._tasks: set[asyncio.Task[Any]] | None = None
        self._close_callbacks: list[Callable[[], object]] | None = None
        self._eof_callbacks: list[Callable[[], object]] | None = []
        self._drain_waiters: list[asyncio.Future[None]] | None = None
        self._sink: BodySink | None = None
        self._body_view: memoryview | None = None
        self._sink_req: Request | None = None
        self._linger: asyncio.TimerHandle | None = None
        limits = server.limits
        self.decoder = Decoder(max_header=limits.max_header, policy=self._body_policy)
        self.nonce = b""
        self.opened = self.last_data = self.last_frame = self._loop.time()
        self.write_paused_at: float | None = None
        self.spoke = False

    # asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's are not subclasses
        peer = transport.get_extra_info("peername")
        self.peer = str(peer[0]) if isinstance(peer, tuple) else "unix"
        refusal = self.server.admit(self)
        if refusal is not None:
            log.warning("refused %s %s: %s", self.kind, self.peer, refusal.message)
            self.close(refusal)
            return
        self.nonce = self.server.new_nonce()
        self.send(self.server.hello_header(base64.b64encode(self.nonce).decode()))
        self._flush()
        log.info("open %s %s", self.kind, self.peer)

    def get_buffer(self, sizehint: int) -> memoryview:
        """Where the next read lands: a streamed body straight into its sink's own buffer
        (no ``bytes`` made and copied per read); anything else into the thread's shared
        read buffer, copied out at once by ``buffer_updated``."""
        sink = self._sink
        if sink is not None and (left := self.decoder.body_left):
            view = sink.buffer(left)
            if view is not None:
                self._body_view = view
                return view
        return _read_buffer()

    def buffer_updated(self, nbytes: int) -> None:
        view, self._body_view = self._body_view, None
        if view is None:
            self.data_received(bytes(_read_buffer()[:nbytes]))
            return
        if self._closing or self._sink is None:
            return
        self.decoder.body_received(nbytes)
        self._sink.write(view[:nbytes])
        self.data_received(b"")  # the body's end, once all of it is in

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return
        now = self._loop.time()
        self.last_data = now
        decoder = self.decoder
        decoder.receive_data(data)
        self._receiving = True
        complete = False
        try:
            while (event := decoder.next_event()) is not None:
                cls = event.__class__
                if cls is Frame:
                    complete = True
                    self._on_frame(event.header, event.body)  # type: ignore[union-attr]
                elif cls is BodyChunk:
                    if self._sink is not None:
                        self._sink.write(event.data)  # type: ignore[union-attr]
                elif cls is FrameStart:
                    self._on_stream_start(event.header)  # type: ignore[union-attr]
                else:
                    complete = True
                    self._on_stream_end()
                if self._closing or self._paused & _PAUSE_DONE:
                    break  # after a fatal error or bye nothing more is read
        except (FrameBad, FrameTooLarge) as exc:
            log.info("%s %s sent a bad frame: %s", self.kind, self.peer, exc.message)
            self.close(exc)
        finally:
            self._receiving = False
        if complete:
            self.last_frame = now
            self.spoke = True
        self._flush()

    def eof_received(self) -> bool:
        if self._closing:
            return False
        if self.decoder.in_frame:
            return False  # a frame cut off for good (a dropped upload): close, do not wait
        self._finish_when_idle()
        return True

    def pause_writing(self) -> None:
        self.write_paused_at = self._loop.time()
        self._pause(_PAUSE_WRITE)

    def resume_writing(self) -> None:
        self.write_paused_at = None
        self._resume(_PAUSE_WRITE)
        self._wake_drainers(None)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._closing = True
        if self._linger is not None:
            self._linger.cancel()
        if self._sink is not None:
            sink, self._sink = self._sink, None
            self._guarded(sink.abort)
        self._wake_drainers(ConnectionClosed("connection closed"))
        if self._tasks:
            for task in self._tasks:
                task.cancel()
        callbacks, self._close_callbacks = self._close_callbacks, None
        for callback in callbacks or ():
            self._guarded(callback)
        self.server.forget(self)
        self.decoder = _SPENT  # the decoder's policy refers back to us: break the cycle
        log.info("close %s %s%s", self.kind, self.peer, f" user={self.user}" if self.user else "")

    # what services use (server.service.Session) ----------------------------------

    def send(self, header: dict[str, Any], body: bytes | bytearray | memoryview = b"") -> None:
        if self.closed:
            return
        out = self._out if self._held is None else self._held
        encode_header_into(out, header, len(body))
        if body:
            out += body
        self._queued()

    def send_raw(self, frame: bytes) -> None:
        if self.closed:
            return
        if self._held is None:
            self._out += frame
        else:
            self._held += frame
        self._queued()

    async def drain(self) -> None:
        if self.closed:
            raise ConnectionClosed("connection closed")
        self._flush()
        if self._paused & _PAUSE_WRITE:
            waiter: asyncio.Future[None] = self._loop.create_future()
            if self._drain_waiters is None:
                self._drain_waiters = []
            self._drain_waiters.append(waiter)
            await waiter

    async def sendfile(self, file: Any, offset: int, count: int) -> None:
        """Send ``count`` bytes of ``file`` (anything with ``fileno()``) from ``offset``.

        Frames other tasks queue meanwhile are held back until the last byte is out, so
        nothing lands inside the body. On plain TCP and UNIX sockets the bytes go from
        the page cache to the socket with ``os.sendfile`` (uvloop has no
        ``loop.sendfile``); TLS needs them in user space, so they are copied. A file that
        ends early cannot complete its frame: the connection is aborted.
        """
        if self._held is not None:
            raise RuntimeError("one sendfile at a time per connection")
        if self.closed or self.transport is None:
            raise ConnectionClosed("connection closed")
        self._held = bytearray()
        try:
            sock = self.transport.get_extra_info("socket")
            if sock is not None and self.transport.get_extra_info("sslcontext") is None:
                await send_zero_copy(self, sock.fileno(), file.fileno(), offset, count)
            else:
                await send_copied(self, file.fileno(), offset, count)
        except ConnectionClosed:
            raise
        except OSError as exc:
            if not self.closed:
                self._abort()
            raise ConnectionClosed(f"sending a file failed: {exc}") from exc
        finally:
            held, self._held = self._held, None
            if held:
                self._out += held
                self._queued()

    def pause_reading(self) -> None:
        self._pause(_PAUSE_SERVICE)

    def resume_reading(self) -> None:
        self._resume(_PAUSE_SERVICE)

    def on_close(self, callback: Callable[[], object]) -> None:
        if self.closed:
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
        if self.closed:
            task.cancel()
        return task

    def close(self, exc: BaseException | None = None) -> None:
        """Close, sending ``exc`` first as a fatal error when it is a protocol error.

        After a fatal error the socket half-closes and lingers, discarding input, so the
        kernel does not answer unread input with a reset that destroys the error frame.
        """
        if self._closing or self.transport is None:
            return
        self._closing = True
        transport = self.transport
        if isinstance(exc, ProtocolError):
            exc.fatal = True
            self.send(error_header(exc))
        if isinstance(exc, LimitSlowConsumer) or self._held is not None:
            self._abort()  # a slow reader, or a file body half sent: no frame can follow
            return
        self._flush()
        if self._paused:
            self._paused = 0
            transport.resume_reading()
        if transport.can_write_eof():
            transport.write_eof()
        self._linger = self._loop.call_later(self.server.linger, self._linger_done)

    # internals --------------------------------------------------------------------

    def _linger_done(self) -> None:
        """The lingering close is over: whatever the client did not read is dropped."""
        if self.transport is None or self.closed:
            return
        if self.transport.get_write_buffer_size():
            self._abort()
        else:
            self.transport.close()

    def _abort(self) -> None:
        """Close at once with a reset, so an unread socket cannot pin kernel buffers."""
        assert self.transport is not None
        sock = self.transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ABORT)
        self.transport.abort()

    def _finish_when_idle(self) -> None:
        """Stop reading (EOF or bye); close gracefully once every running request has answered."""
        self._pause(_PAUSE_DONE)
        callbacks, self._eof_callbacks = self._eof_callbacks, None
        for callback in callbacks or ():
            self._guarded(callback)
        if not self._inflight:
            self._flush()
            self._closing = True
            if self.transport is not None:
                self.transport.close()

    def _queued(self) -> None:
        held = self._held
        if len(self._out) + (len(held) if held else 0) > self.server.limits.max_outbound:
            self._out.clear()
            if held:
                held.clear()
            self.close(LimitSlowConsumer("outbound queue overflowed: read faster"))
            return
        if not self._receiving and not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if not self._out or self.transport is None or self.closed:
            return
        data = bytes(self._out)
        self._out.clear()
        self.transport.write(data)
        if (
            not self._closing
            and self.transport.get_write_buffer_size() > self.server.limits.max_outbound
        ):
            self.close(LimitSlowConsumer("outbound queue overflowed: read faster"))

    def _pause(self, reason: int) -> None:
        if not self._paused and self.transport is not None and not self._closing:
            self.transport.pause_reading()
        self._paused |= reason

    def _resume(self, reason: int) -> None:
        if not self._paused & reason:
            return
        self._paused &= ~reason
        if not self._paused and self.transport is not None and not self._closing:
            self.transport.resume_reading()

    def _wake_drainers(self, exc: BaseException | None) -> None:
        waiters, self._drain_waiters = self._drain_waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                if exc is None:
                    waiter.set_result(None)
                else:
                    waiter.set_exception(exc)

    def _guarded(self, callback: Callable[[], object]) -> None:
        try:
            callback()
        except Exception:
            log.exception("cleanup for %s %s failed", self.kind, self.peer)

    def _own(self, task: asyncio.Task[Any]) -> None:
        if self._tasks is None:
            self._tasks = set()
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _body_policy(self, header: dict[str, Any]) -> tuple[int, bool]:
        op = header.get("op")  # any JSON value: a list or an object must not reach .get()
        spec = self.server.ops.get(op) if op.__class__ is str else None
        if spec is not None:
            plan = spec.body(self, header)
            if plan is not None:
                return plan
        return (self.server.limits.max_body, False)

    def _send_error(self, exc: ProtocolError, header: dict[str, Any], rid: int | None) -> None:
        target = header.get("target")
        self.send(error_header(exc, re=rid, target=target if target.__class__ is int else None))
        if exc.fatal:
            log.info("%s %s: fatal %s: %s", self.kind, self.peer, exc.code, escape(exc.message))
            self.close()

    def _failed(self, exc: Exception, req: Request) -> None:
        """A handler raised: its protocol error goes to the client, anything else to the log."""
        if isinstance(exc, ProtocolError):
            self._send_error(exc, req.header, req.id)
            return
        log.error("op %s from %s %s failed", req.op, self.kind, self.peer, exc_info=exc)
        self._send_error(Internal("internal error; the server logged it"), req.header, req.id)

    def _admit_request(self, header: dict[str, Any]) -> tuple[OpSpec, int | None] | None:
        """The op's spec and id, or None after answering why the frame cannot run."""
        try:
            rid = get_id(header)
        except BadRequest as exc:
            self._send_error(exc, header, None)
            return None
        op = header.get("op")
        spec = self.server.ops.get(op) if op.__class__ is str else None
        try:
            if op.__class__ is not str:
                raise BadRequest("field 'op' must be a string")
            if spec is None:
                if rid is not None:
                    raise OpUnknown(f"unknown op {escape(op, 64)}")
                return None
            if spec.grant is not None and spec.grant not in self.grants:
                raise self.server.grant_error(spec, self.user)
            if rid is not None and self._inflight is not None and rid in self._inflight:
                raise BadRequest(f"id {rid} is still in flight on this connection")
        except ProtocolError as exc:
            self._send_error(exc, header, rid)
            return None
        return spec, rid

    def _on_frame(self, header: dict[str, Any], body: bytes) -> None:
        admitted = self._admit_request(header)
        if admitted is None:
            return
        spec, rid = admitted
        req = Request(self, header, body, rid)
        try:
            result = spec.handler(req)
        except Exception as exc:
            self._failed(exc, req)
            return
        if result is not None:
            self._run(req, result)

    def _run(self, req: Request, awaitable: Awaitable[None]) -> None:
        task = self._loop.create_task(self._guard(req, awaitable))
        self._own(task)
        if req.id is not None:
            if self._inflight is None:
                self._inflight = {}
            self._inflight[req.id] = task
        if self._inflight and len(self._inflight) >= self.server.limits.max_inflight:
            self._pause(_PAUSE_INFLIGHT)

    async def _guard(self, req: Request, awaitable: Awaitable[None]) -> None:
        try:
            await awaitable
        except ConnectionClosed:
            pass
        except Exception as exc:
            self._failed(exc, req)
        finally:
            if req.id is not None and self._inflight is not None:
                self._inflight.pop(req.id, None)
                if len(self._inflight) < self.server.limits.max_inflight:
                    self._resume(_PAUSE_INFLIGHT)
            if self._paused & _PAUSE_DONE and not self._inflight:
                self._finish_when_idle()

    def _on_stream_start(self, header: dict[str, Any]) -> None:
        admitted = self._admit_request(header)
        if admitted is None:
            return
        spec, rid = admitted
        req = Request(self, header, b"", rid)
        try:
            self._sink = spec.handler(req)  # type: ignore[assignment]
            self._sink_req = req
        except Exception as exc:
            self._failed(exc, req)

    def _on_stream_end(self) -> None:
        sink, self._sink = self._sink, None
        req, self._sink_req = self._sink_req, None
        if sink is None or req is None:
            return
        try:
            sink.end()
        except Exception as exc:
            self._failed(exc, req)

    def check_timers(self, now: float) -> None:
        """Called about once a second by the server: idle, handshake and send timeouts."""
        if self._closing:
            return
        limits = self.server.limits
        if self.write_paused_at is not None and now - self.write_paused_at > limits.send_timeout:
            self.close(LimitSlowConsumer(f"nothing could be sent for {limits.send_timeout:g} s"))
        elif not self.spoke and now - self.opened > limits.handshake_timeout:
            self.close(LimitIdle(f"no complete frame within {limits.handshake_timeout:g} s"))
        elif self.decoder.in_frame and now - self.last_data > limits.handshake_timeout:
            self.close(LimitIdle(f"frame stalled for {limits.handshake_timeout:g} s"))
        elif now - self.last_frame > limits.idle_timeout and not self._inflight:
            self.close(LimitIdle(f"idle for {limits.idle_timeout:g} s; send ping to stay"))
