"""How ``AsyncClient`` puts bytes on its transport: batched per loop turn, with a write deadline.

A lone frame (ping-pong) is written at once; the frames that follow it in the same loop
turn (pipelined requests) are joined and leave together at the end of the turn. While a
file body goes out (``exclusive``), other frames wait behind it so none lands inside
the body. ``drain`` waits while the transport is full, at most ``write_timeout``
seconds: a server that stops reading then breaks the connection instead of a hang.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
from collections.abc import AsyncIterator, Callable

from ..protocol.client_errors import ConnectionBroken, ConnectionClosed
from ..protocol.errors import SockhubError

__all__ = ["FLUSH_AT", "WRITE_NOW", "BodyWriter", "Writer"]

FLUSH_AT = 4096
"""Queued frames leave once they reach this many bytes, so the server starts on a burst
of pipelined requests while the rest is still being built."""
WRITE_NOW = 64 * 1024
"""Frames at least this big skip the queue (after flushing it): no extra copy."""


class Writer:
    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        write_timeout: float | None,
        fail: Callable[[SockhubError], None],
    ) -> None:
        self.loop = loop
        self._timeout = write_timeout
        self._fail = fail
        self.transport: asyncio.Transport | None = None
        self._out = bytearray()
        self._held: bytearray | None = None
        self._corked = False
        self._paused = False
        self._waiters: list[asyncio.Future[None]] = []
        self._error: SockhubError | None = None
        self._lock = asyncio.Lock()

    def attach(self, transport: asyncio.Transport) -> None:
        self.transport = transport

    @property
    def attached(self) -> bool:
        return self.transport is not None

    def check(self) -> asyncio.Transport:
        if self._error is not None:
            raise self._error
        transport = self.transport
        if transport is None or transport.is_closing():
            raise ConnectionClosed("the connection is closed")
        return transport

    def write(self, frame: bytes) -> None:
        """Send a frame: the first of an event-loop turn at once, the rest joined."""
        transport = self.transport
        if self._error is not None or transport is None:
            transport = self.check()  # raises; a closing transport is ruled out by the core
        if self._held is not None:  # a file body is being sent: frames wait behind it
            self._held += frame
        elif not self._corked:
            self._corked = True
            self.loop.call_soon(self._uncork)
            transport.write(frame)
        elif len(frame) >= WRITE_NOW:
            self.flush()
            transport.write(frame)
        else:
            self._out += frame
            if len(self._out) >= FLUSH_AT:
                self.flush()

    def _uncork(self) -> None:
        self._corked = False
        self.flush()

    def flush(self) -> None:
        """Write what is queued now (``drain`` and a full queue do not wait for the turn)."""
        if not self._out:
            return
        data = bytes(self._out)
        self._out.clear()
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write(data)

    # flow control -------------------------------------------------------------------

    def pause(self) -> None:
        self._paused = True

    def resume(self) -> None:
        self._paused = False
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def drain(self) -> None:
        """Wait while the transport is over its high-water mark, up to the write deadline."""
        self.check()
        self.flush()
        if not self._paused:
            return
        waiter: asyncio.Future[None] = self.loop.create_future()
        self._waiters.append(waiter)
        try:
            await asyncio.wait_for(waiter, self._timeout)
        except TimeoutError:
            error = ConnectionBroken(f"the server did not read for {self._timeout:g} s")
            self._fail(error)
            raise error from None

    def fail(self, exc: SockhubError) -> None:
        if self._error is None:
            self._error = exc
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_exception(exc)

    def pause_reading(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    @contextlib.asynccontextmanager
    async def exclusive(self) -> AsyncIterator[BodyWriter]:
        """The transport to one body at a time; other frames wait until it is out."""
        async with self._lock:
            transport = self.check()
            self.flush()
            self._held = bytearray()
            try:
                yield BodyWriter(self, transport)
            finally:
                held, self._held = self._held, None
                if held:
                    self.write(bytes(held))


class BodyWriter:
    """Raw bytes of one frame's body straight to the transport (see ``Writer.exclusive``)."""

    def __init__(self, writer: Writer, transport: asyncio.Transport) -> None:
        self._writer = writer
        self._transport = transport
        self.zero_copy = True

    def write(self, data: bytes) -> None:
        self._writer.check()
        self._transport.write(data)

    async def drain(self) -> None:
        await self._writer.drain()

    async def sendfile(self, src: io.BufferedReader, offset: int, count: int) -> bool:
        """Send ``count`` bytes of ``src`` without a copy; False where the loop cannot
        (uvloop, TLS): then the caller copies them."""
        if not self.zero_copy:
            return False
        try:
            await self._writer.loop.sendfile(self._transport, src, offset, count, fallback=False)
        except (NotImplementedError, RuntimeError):
            self.zero_copy = False
        return self.zero_copy
