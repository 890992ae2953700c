"""The pipes between a run and the event loop, with backpressure both ways.

Output: a pipe is read only while the client keeps up (the deliver coroutine awaits the
session's drain), so a client that does not read fills the pipe and the command blocks
on its own write; the server's memory and the other clients are untouched.
Input: ``exec.in`` bodies queue up to a high watermark, above which the owner stops
reading that client until the command has taken enough of them.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import errno
import os
from collections.abc import Awaitable, Callable

__all__ = ["InputPipe", "OutputPipe"]

READ_SIZE = 256 * 1024
FINISH_MAX = 1024 * 1024
"""Bytes still read after the group is gone: more than any pipe holds (256 KiB here)."""


class OutputPipe:
    """Copies one pipe to ``deliver`` as bytes arrive, until EOF or until told to finish."""

    __slots__ = ("_fd", "_finishing", "_left", "_loop", "_waiter", "deliver")

    def __init__(self, fd: int, deliver: Callable[[bytes], Awaitable[None]]) -> None:
        self._fd = fd
        self._loop = asyncio.get_running_loop()
        self._waiter: asyncio.Future[None] | None = None
        self._finishing = False
        self._left = 0
        self.deliver = deliver

    async def run(self) -> None:
        fd = self._fd
        try:
            while True:
                try:
                    data = os.read(fd, READ_SIZE)
                except BlockingIOError:
                    if self._finishing:
                        return
                    await self._readable()
                    continue
                except OSError as exc:
                    if exc.errno == errno.EIO:
                        return  # a pty master whose terminal has no process left: its EOF
                    raise
                if not data:
                    return
                if self._finishing:
                    self._left -= len(data)
                    if self._left < 0:
                        return  # an escaped writer keeps the pipe full: what it adds is dropped
                await self.deliver(data)
                if len(data) == READ_SIZE:
                    await asyncio.sleep(0)  # a fast writer must not starve the other clients
        finally:
            os.close(fd)

    def finish(self) -> None:
        """Read what the pipe holds now, then stop, even if a writer escaped the group."""
        self._finishing = True
        self._left = FINISH_MAX
        self._wake()

    async def _readable(self) -> None:
        self._waiter = self._loop.create_future()
        self._loop.add_reader(self._fd, self._wake)
        try:
            await self._waiter
        finally:
            self._loop.remove_reader(self._fd)
            self._waiter = None

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


class InputPipe:
    """Feeds queued bytes to a pipe whenever it can take them, never blocking the loop.

    ``backlog(True)`` is called when the queue passes ``high`` bytes (the limit
    ``exec_input_high``), ``backlog(False)`` when it falls below a quarter of that again
    (or the pipe is gone).
    """

    __slots__ = (
        "_backlogged",
        "_eof",
        "_fd",
        "_high",
        "_loop",
        "_queue",
        "_queued",
        "_writing",
        "backlog",
    )

    def __init__(self, fd: int, backlog: Callable[[bool], None], high: int) -> None:
        self._fd = fd
        self._high = high
        self._loop = asyncio.get_running_loop()
        self._queue: collections.deque[memoryview] = collections.deque()
        self._queued = 0
        self._eof = False
        self._writing = False
        self._backlogged = False
        self.backlog = backlog

    @property
    def closed(self) -> bool:
        return self._fd < 0

    @property
    def eof(self) -> bool:
        """The client ended the input (it may still be flushing)."""
        return self._eof

    def write(self, data: bytes) -> None:
        if self._fd < 0:
            return  # the command closed its stdin: what it would not read is dropped
        if data:
            self._queue.append(memoryview(data))
            self._queued += len(data)
        self._flush()
        if self._queued > self._high and not self._backlogged:
            self._backlogged = True
            self.backlog(True)

    def write_eof(self) -> None:
        self._eof = True
        self._flush()

    def close(self) -> None:
        """Drop whatever is queued and close the pipe (the command ended or closed it)."""
        self._queue.clear()
        self._queued = 0
        self._shut()

    def _flush(self) -> None:
        queue = self._queue
        try:
            while queue:
                n = os.write(self._fd, queue[0])
                self._queued -= n
                if n == len(queue[0]):
                    queue.popleft()
                else:
                    queue[0] = queue[0][n:]
        except BlockingIOError:
            if not self._writing:
                self._writing = True
                self._loop.add_writer(self._fd, self._flush)
            return
        except OSError:  # EPIPE: the command closed its stdin or ended
            self.close()
            return
        if self._backlogged and self._queued <= self._high // 4:
            self._backlogged = False
            self.backlog(False)
        if self._eof:
            self._shut()
        elif self._writing:
            self._writing = False
            self._loop.remove_writer(self._fd)

    def _shut(self) -> None:
        if self._fd < 0:
            return
        if self._writing:
            self._writing = False
            self._loop.remove_writer(self._fd)
        with contextlib.suppress(OSError):
            os.close(self._fd)
        self._fd = -1
        if self._backlogged:
            self._backlogged = False
            self.backlog(False)
