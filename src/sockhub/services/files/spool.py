"""One upload's bytes on their way to its partial file, hashed as they go, off the loop.

The event loop only appends received chunks to a queue; a worker thread writes them at
their offset and feeds the same chunk to sha256 (both release the GIL), so disk, hash
and network overlap and the loop never waits on the disk. Reads land in pooled buffers
(``buffer``), one after another in the same buffer until it is full: a browser's body
comes in reads of tens of KiB, and the worker is woken, writes and hashes once per
buffer, not once per read. A resumed upload first hashes
the bytes the partial already holds, while the new ones arrive. When more than ``high``
bytes wait, the connection stops reading (``pressure(True)``) until half have gone. A
write error (a full disk) is reported at once through ``failed``, not at the end.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import os
import threading
from collections.abc import Callable
from concurrent.futures import Executor

from .hashes import feed

__all__ = ["Spool"]

BUFFER = 1024 * 1024
"""Size of the pooled buffers a body is received into."""
_LINGER = 0.05
"""Seconds an idle worker waits for the next chunk before giving its thread back."""
_fadvise = getattr(os, "posix_fadvise", None)  # not on macOS
WRITEBACK = 16 * 1024 * 1024
"""Bytes written between two nudges to the kernel to start writing them to the disk, so
the fsync before the file appears waits for the last of them only, not for all."""


class Spool:
    """Writes and hashes one upload of ``total`` bytes (``offset`` already in the partial);
    ``finish`` gives the sha256 of the whole file."""

    def __init__(
        self,
        fd: int,
        offset: int,
        total: int,
        *,
        executor: Executor,
        loop: asyncio.AbstractEventLoop,
        pressure: Callable[[bool], None],
        failed: Callable[[OSError], None],
        high: int,
    ) -> None:
        self.fd = fd
        self.offset = offset
        self.written = offset
        self.total = total
        self._executor = executor
        self._loop = loop
        self._pressure = pressure
        self._failed = failed
        self._high = high
        self._hash = hashlib.sha256()
        self._queue: collections.deque[bytes | bytearray | memoryview] = collections.deque()
        self._queued = 0
        self._cond = threading.Condition()
        self._running = False
        self._primed = offset == 0
        self._ending = False
        self._paused = False
        self._error: OSError | None = None
        self._waiters: list[asyncio.Future[None]] = []
        self._closed = False
        self._free: list[bytearray] = []
        self._lent = 0
        self._nudged = offset
        """Where the written bytes not yet nudged towards the disk begin (worker side)."""
        self._fill: bytearray | None = None
        """The pooled buffer reads are landing in, not yet queued; its first ``_filled``
        bytes are the body's next bytes."""
        self._filled = 0

    # event-loop side ----------------------------------------------------------------

    def buffer(self, size: int) -> memoryview | None:
        """Where the next body bytes may be read (``BodySink.buffer``): the rest of the
        pooled buffer being filled (at most ``size`` bytes); None once ``high`` bytes'
        worth of buffers are out, so queued bytes stay bounded."""
        fill = self._fill
        if fill is None:
            with self._cond:
                if self._error is not None or self._closed:
                    return None
                if self._free:
                    fill = self._free.pop()
                elif self._lent < self._high // BUFFER + 2:
                    fill = bytearray(BUFFER)
                else:
                    return None
                self._lent += 1
            self._fill, self._filled = fill, 0
        at = self._filled
        return memoryview(fill)[at : at + min(size, BUFFER - at)]

    def write(self, chunk: bytes | bytearray | memoryview) -> None:
        """Take the body's next bytes: a slice ``buffer`` gave, which stays in its buffer
        until the buffer is full, or any other chunk, queued at once (after what was
        filled before it)."""
        if isinstance(chunk, memoryview) and chunk.obj is self._fill is not None:
            self._filled += len(chunk)
            if self._filled < BUFFER:
                return
            self._enqueue(self._take_fill())
            return
        self._flush()
        self._enqueue(chunk)

    def _take_fill(self) -> memoryview:
        fill, self._fill = self._fill, None
        assert fill is not None
        return memoryview(fill)[: self._filled]

    def _flush(self) -> None:
        """Queue what the buffer being filled holds."""
        if self._fill is not None and self._filled:
            self._enqueue(self._take_fill())

    def _enqueue(self, chunk: bytes | bytearray | memoryview) -> None:
        """Queue a chunk; a ``memoryview`` of a pooled buffer goes back to the pool once
        the chunk is stored."""
        n = len(chunk)
        with self._cond:
            if self._error is not None or self._closed:
                self._give_back(chunk)
                return
            self._queue.append(chunk)
            self._queued += n
            over = self._queued > self._high and not self._paused
            if over:
                self._paused = True
            self._wake_worker()
        if over:
            self._pressure(True)

    def start(self) -> None:
        """Begin hashing what a resumed partial already holds, before new bytes arrive."""
        if not self._primed:
            with self._cond:
                self._wake_worker()

    async def finish(self) -> str:
        """Wait until every byte is on disk and hashed; the hex sha256 of the whole file."""
        self._flush()
        with self._cond:
            self._ending = True
            self._cond.notify()
        await self._idle()
        if self._error is not None:
            raise self._error
        return self._hash.hexdigest()

    async def close(self) -> None:
        """Stop taking bytes, let the queued ones reach the disk (a later resume counts on
        them), then close the partial's fd."""
        self._flush()
        with self._cond:
            self._ending = True
            self._cond.notify()
        try:
            await self._idle()
        finally:
            with self._cond:
                if not self._closed:
                    self._closed = True
                    os.close(self.fd)

    async def _idle(self) -> None:
        with self._cond:
            if not self._running and (self._primed or self._error is not None):
                return
            waiter = self._loop.create_future()
            self._waiters.append(waiter)
        await waiter

    # worker side ----------------------------------------------------------------------

    def _wake_worker(self) -> None:
        """With the lock held: hand the queue to a worker, or nudge the one that lingers."""
        if self._running:
            self._cond.notify()
        else:
            self._running = True
            self._executor.submit(self._work)

    def _work(self) -> None:
        try:
            if not self._primed:
                self._prime()
            while (chunk := self._next()) is not None:
                self._store(chunk)
        except OSError as exc:
            with self._cond:
                self._error = exc
                for chunk in self._queue:
                    self._give_back(chunk)
                self._queue.clear()
                self._queued = 0
                self._running = False
            self._loop.call_soon_threadsafe(self._failed, exc)
        with self._cond:
            if self._running:
                return  # a newer worker took over the queue and its waiters
            waiters, self._waiters = self._waiters, []
            resume, self._paused = self._paused, False
        for waiter in waiters:
            self._loop.call_soon_threadsafe(_resolve, waiter)
        if resume:
            self._loop.call_soon_threadsafe(self._pressure, False)

    def _prime(self) -> None:
        """Hash the bytes a resumed partial already holds."""
        feed(self._hash, self.fd, self.offset)
        self._primed = True

    def _next(self) -> bytes | bytearray | memoryview | None:
        with self._cond:
            if not self._queue and not self._ending and self.written < self.total:
                self._cond.wait(_LINGER)  # more is on its way: keep the thread a moment
            if not self._queue:
                self._running = False
                return None
            return self._queue[0]

    def _store(self, chunk: bytes | bytearray | memoryview) -> None:
        view = memoryview(chunk)
        pos = self.written
        while view:
            n = os.pwrite(self.fd, view, pos)
            pos += n
            view = view[n:]
        self._hash.update(chunk)
        if pos - self._nudged >= WRITEBACK and _fadvise is not None:
            # Linux starts the writeback of the range's dirty pages and does not wait
            _fadvise(self.fd, self._nudged, pos - self._nudged, os.POSIX_FADV_DONTNEED)
            self._nudged = pos
        with self._cond:
            self._queue.popleft()
            self._give_back(chunk)
            self._queued -= len(chunk)
            self.written = pos
            resume = self._paused and self._queued <= self._high // 2
            if resume:
                self._paused = False
        if resume:
            self._loop.call_soon_threadsafe(self._pressure, False)

    def _give_back(self, chunk: bytes | bytearray | memoryview) -> None:
        """With the lock held: a pooled buffer is free again once its chunk is done."""
        if isinstance(chunk, memoryview) and isinstance(chunk.obj, bytearray):
            self._free.append(chunk.obj)
            self._lent -= 1


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
