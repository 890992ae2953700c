"""The outbound half of a ``ServerSession``: the ordered queue of frames and file bodies.

Everything a session sends goes through here, in order: frames are encoded into one
buffer and handed to the link at the end of the loop turn (or at once past
``_FLUSH_AT``); a file body queues what follows it until it has left. The backlog this
leaves in memory is charged to the server's outbound budget and judged against the soft
and hard limits; the link's high-water mark pauses the session's reading (``WRITE``);
and a fatal close half-closes and lingers. ``server/session.py`` has the adapter's
side of this (points 4 to 6 of its docstring).

``ServerSession`` inherits this class instead of holding an instance, so the hot write
path (``send`` and ``_queued``) costs no extra attribute hop or call per message. What
this half needs from the session is declared under ``TYPE_CHECKING`` below: its
receiving and done flags, its counted pauses, ``spawn``, ``finish`` and ``close``.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import deque
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, Protocol

from ..protocol.errors import LimitSlowConsumer
from ..protocol.frames import encode_header_into
from .sendfile import FileBody, send_body
from .service import ConnectionClosed

if TYPE_CHECKING:
    from .app import Server

__all__ = ["WRITE", "Link", "Outbound"]

log = logging.getLogger("sockhub.server")

WRITE = "write"
"""The link's buffer is over its high-water mark (a pause reason of the session)."""

_FLUSH_AT = 1 << 20
"""Queued bytes that are written at once instead of at the end of the loop turn."""


class Link(Protocol):
    """What a transport adapter offers its session (see ``server/session.py``'s docstring)."""

    def write(self, data: bytes | bytearray | memoryview) -> None: ...

    def buffered(self) -> int:
        """Bytes written but not yet taken by the peer's side (the link's own buffer)."""

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    def write_eof(self) -> bool:
        """Half-close after what is buffered; False when the transport cannot."""

    def close(self) -> None:
        """Close after what is buffered has left."""

    def abort(self) -> None:
        """Close at once, dropping what is buffered (a reset on TCP)."""

    def socket_fd(self) -> int | None:
        """A socket descriptor ``os.sendfile`` may write file bodies to, or None."""


class Outbound:
    """The session's identity, its link, and the ordered outbound queue on that link."""

    __slots__ = (
        "_charged",
        "_closing",
        "_drain_waiters",
        "_flush_scheduled",
        "_linger",
        "_loop",
        "_lost",
        "_out",
        "_queue",
        "closed",
        "kind",
        "link",
        "over_soft_since",
        "peer",
        "server",
        "write_paused_at",
    )

    if TYPE_CHECKING:
        # provided by ServerSession
        _receiving: bool
        _done: bool

        def _hold(self, reason: str) -> None: ...
        def _release(self, reason: str) -> None: ...
        def spawn(self, coro: Coroutine[Any, Any, object]) -> asyncio.Task[object]: ...
        def finish(self) -> None: ...
        def close(self, exc: BaseException | None = None) -> None: ...

    def __init__(self, server: Server, link: Link, kind: str, peer: str) -> None:
        self.server = server
        self.link = link
        self.kind = kind
        self.peer = peer
        self._loop = server.loop
        self.closed = False
        """No more output is accepted (closing or closed)."""
        self._closing = False
        self._lost = False
        self._out = bytearray()
        self._queue: deque[bytearray | FileBody] | None = None
        """What waits behind a file body, in order; None when no body is queued."""
        self._flush_scheduled = False
        self._drain_waiters: list[asyncio.Future[None]] | None = None
        self._linger: asyncio.TimerHandle | None = None
        self._charged = 0
        """This session's backlog as last charged to the outbound budget."""
        self.write_paused_at: float | None = None
        self.over_soft_since: float | None = None

    def send(self, header: dict[str, Any], body: bytes | bytearray | memoryview = b"") -> None:
        if self.closed:
            return
        out = self._out if self._queue is None else self._tail()
        encode_header_into(out, header, len(body))
        if body:
            out += body
        self._queued()

    def send_raw(self, frame: bytes) -> None:
        if self.closed:
            return
        if self._queue is None:
            self._out += frame
        else:
            self._tail().extend(frame)
        self._queued()

    async def drain(self) -> None:
        """Wait until what is queued has (mostly) left: the link is below its high-water
        mark and no file body or frame waits behind one."""
        while True:
            if self.closed:
                raise ConnectionClosed("connection closed")
            self._flush()
            if self.write_paused_at is None and self._queue is None:
                return
            waiter: asyncio.Future[None] = self._loop.create_future()
            if self._drain_waiters is None:
                self._drain_waiters = []
            self._drain_waiters.append(waiter)
            await waiter

    async def send_file(self, header: dict[str, Any], file: Any, offset: int, count: int) -> None:
        """Queue ``header`` and ``count`` bytes of ``file`` (anything with ``fileno()``)
        from ``offset`` as its body, behind everything queued before; return once the
        body has been written. Any number may be queued: they leave in order, and frames
        queued meanwhile follow the body instead of landing inside it."""
        if self.closed:
            raise ConnectionClosed("connection closed")
        body = FileBody(os.dup(file.fileno()), offset, count, self._loop.create_future())
        out = self._out if self._queue is None else self._tail()
        encode_header_into(out, header, count)
        if self._queue is None:
            self._queue = deque()
            self.spawn(self._pump(self._queue))
        self._queue.append(body)
        self._queued()
        await asyncio.shield(body.done)

    def pause_writing(self) -> None:
        self.write_paused_at = self._loop.time()
        self._hold(WRITE)

    def resume_writing(self) -> None:
        self.write_paused_at = None
        self._release(WRITE)
        self._wake_drainers(None)
        self.account()

    def _tail(self) -> bytearray:
        """The bytes behind the last queued file body, where new frames go."""
        queue = self._queue
        assert queue is not None
        last = queue[-1] if queue else None
        if last.__class__ is bytearray:
            return last
        tail = bytearray()
        queue.append(tail)
        return tail

    def backlog(self) -> int:
        """Bytes queued in memory for this client: the link's buffer and ours (file
        bodies not yet read are not in memory and do not count)."""
        queued = self.link.buffered() + len(self._out)
        for item in self._queue or ():
            if item.__class__ is bytearray:
                queued += len(item)
        return queued

    async def writable(self) -> None:
        """Wait until the link is below its high-water mark (raises once closed)."""
        while self.write_paused_at is not None:
            if self._lost:
                raise ConnectionClosed("connection closed")
            waiter: asyncio.Future[None] = self._loop.create_future()
            if self._drain_waiters is None:
                self._drain_waiters = []
            self._drain_waiters.append(waiter)
            await waiter

    async def _pump(self, queue: deque[bytearray | FileBody]) -> None:
        """Move the queue to the link in order, a file body only once the link is empty."""
        try:
            while queue:
                self._flush()  # what was queued before the first body goes first
                item = queue[0]
                if isinstance(item, bytearray):
                    queue.popleft()
                    self.link.write(bytes(item))
                    self.account()
                    await self.writable()
                    continue
                await send_body(self, item)
                queue.popleft()
                item.finished(None)
        except BaseException as exc:
            failure = exc if isinstance(exc, ConnectionClosed) else ConnectionClosed(str(exc))
            for item in queue:
                if item.__class__ is FileBody:
                    item.finished(failure)
            if not self._closing:
                self.closed = self._closing = True
                self._abort()  # a body cut short: no frame can follow it
            if not isinstance(exc, Exception):
                raise
            if not isinstance(exc, (ConnectionClosed, OSError)):
                log.error("sending to %s %s failed", self.kind, self.peer, exc_info=exc)
            return
        if self._queue is queue:
            self._queue = None
        self._wake_drainers(None)
        if self._done:
            self.finish()

    def _linger_done(self) -> None:
        """The lingering close is over: whatever the client did not read is dropped."""
        if self._lost:
            return
        if self.link.buffered():
            self.link.abort()
        else:
            self.link.close()

    def _abort(self) -> None:
        self._out.clear()
        self.link.abort()

    def _queued(self) -> None:
        if len(self._out) >= _FLUSH_AT:
            self._flush()
        elif not self._receiving and not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self, final: bool = False) -> None:
        """Hand what is queued to the link, then judge the backlog that remains."""
        self._flush_scheduled = False
        if self._lost or (self._closing and not final):
            return
        if self._out:
            data = bytes(self._out)
            self._out.clear()
            self.link.write(data)
        self.account()

    def account(self) -> None:
        """Cut a client whose backlog passed the hard limit or stayed over the soft one
        for its grace time; a client that reads is never cut for one large burst."""
        if self._closing:
            return
        backlog = self.backlog()
        if not backlog and not self._charged:
            self.over_soft_since = None
            return
        limits = self.server.limits
        if backlog != self._charged:
            outbound = self.server.outbound
            outbound.charge(self._charged, backlog)
            self._charged = backlog
            if outbound.spent and backlog > outbound.share:
                self.close(LimitSlowConsumer("the server is short of memory: read faster"))
                return
        if backlog > limits.max_outbound:
            self.close(LimitSlowConsumer(f"{backlog} bytes queued for you: read faster"))
            return
        if backlog <= limits.outbound_soft:
            self.over_soft_since = None
            return
        now = self._loop.time()
        if self.over_soft_since is None:
            self.over_soft_since = now
        elif now - self.over_soft_since > limits.outbound_soft_seconds:
            self.close(LimitSlowConsumer("your backlog stayed too large: read faster"))

    def _wake_drainers(self, exc: BaseException | None) -> None:
        waiters, self._drain_waiters = self._drain_waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                if exc is None:
                    waiter.set_result(None)
                else:
                    waiter.set_exception(exc)

    def wake_drainers(self) -> None:
        self._wake_drainers(None)

    def _linger_close(self) -> None:
        """Half-close after what is queued and linger, or close when the link cannot."""
        if self.link.write_eof():
            self._linger = self._loop.call_later(self.server.linger, self._linger_done)
        else:
            self.link.close()

    def _drop_outbound(self) -> None:
        """The link is gone: free queued file bodies, the budget and whoever waits."""
        if self._linger is not None:
            self._linger.cancel()
        queue, self._queue = self._queue, None
        for item in queue or ():
            if isinstance(item, FileBody):  # its pump may never have run: free its fd
                item.finished(ConnectionClosed("connection closed"))
        if self._charged:
            self.server.outbound.charge(self._charged, 0)
            self._charged = 0
        self._wake_drainers(ConnectionClosed("connection closed"))
