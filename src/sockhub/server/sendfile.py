"""Moving one queued file body onto a session's link, after everything queued before it.

Zero-copy on plain TCP and UNIX sockets: ``os.sendfile`` from the page cache, waiting for
writability on a duplicate of the socket's descriptor (uvloop has no ``loop.sendfile``).
TLS and message transports need the bytes in user space, so there they are read and
written in 1 MiB pieces, one piece in memory at a time.
"""

from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING

from .service import ConnectionClosed

if TYPE_CHECKING:
    from .outbound import Outbound

__all__ = ["FileBody", "send_body"]

_PIECE = 1 << 20


class FileBody:
    """A file body in a session's outbound queue: its own fd, the range, and who waits."""

    __slots__ = ("count", "done", "fd", "offset")

    def __init__(self, fd: int, offset: int, count: int, done: asyncio.Future[None]) -> None:
        self.fd = fd
        self.offset = offset
        self.count = count
        self.done = done

    def finished(self, exc: BaseException | None) -> None:
        """The body left (``exc`` None) or never will: release the fd, tell the sender."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        if not self.done.done():
            if exc is None:
                self.done.set_result(None)
            else:
                self.done.set_exception(exc)


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


async def _writable(fd: int, timeout: float) -> None:
    """Wait until ``fd`` takes more bytes; a reader stalled for ``timeout`` is cut off."""
    loop = asyncio.get_running_loop()
    waiter: asyncio.Future[None] = loop.create_future()
    loop.add_writer(fd, _resolve, waiter)
    try:
        await asyncio.wait_for(waiter, timeout)
    except TimeoutError:
        raise OSError("the client stopped reading") from None
    finally:
        loop.remove_writer(fd)


async def send_body(session: Outbound, body: FileBody) -> None:
    sock_fd = session.link.socket_fd()
    if sock_fd is None:
        await _send_copied(session, body)
    else:
        await _send_zero_copy(session, sock_fd, body)


async def _send_zero_copy(session: Outbound, sock_fd: int, body: FileBody) -> None:
    timeout = session.server.limits.send_timeout
    out = os.dup(sock_fd)  # a second fd, so the loop lets us wait for it to be writable
    try:
        while session.link.buffered():
            await _writable(out, timeout)
        offset, end = body.offset, body.offset + body.count
        while offset < end:
            if session.closed:
                raise ConnectionClosed("connection closed")
            try:
                n = os.sendfile(out, body.fd, offset, end - offset)
            except BlockingIOError:
                await _writable(out, timeout)
                continue
            if n == 0:
                raise OSError(f"the file ended {end - offset} bytes early")
            offset += n
    finally:
        os.close(out)


async def _send_copied(session: Outbound, body: FileBody) -> None:
    offset, end = body.offset, body.offset + body.count
    while offset < end:
        chunk = await asyncio.to_thread(os.pread, body.fd, min(end - offset, _PIECE), offset)
        if not chunk:
            raise OSError(f"the file ended {end - offset} bytes early")
        if session.closed:
            raise ConnectionClosed("connection closed")
        offset += len(chunk)
        session.link.write(chunk)
        await session.writable()
