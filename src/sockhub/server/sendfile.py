"""Moving a file's bytes onto a connection's socket, after what the connection has queued.

Zero-copy on plain TCP and UNIX sockets: ``os.sendfile`` from the page cache, waiting for
writability on a duplicate of the socket's descriptor (uvloop has no ``loop.sendfile``).
TLS needs the bytes in user space, so there they are read and queued in 1 MiB pieces.
"""

from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING

from .service import ConnectionClosed

if TYPE_CHECKING:
    from .connection import Connection

__all__ = ["send_copied", "send_zero_copy"]

_PIECE = 1 << 20


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


async def _writable(conn: Connection, fd: int) -> None:
    """Wait until ``fd`` takes more bytes; a reader stalled for ``send_timeout`` is cut off."""
    loop = asyncio.get_running_loop()
    waiter: asyncio.Future[None] = loop.create_future()
    loop.add_writer(fd, _resolve, waiter)
    try:
        await asyncio.wait_for(waiter, conn.server.limits.send_timeout)
    except TimeoutError:
        raise OSError("the client stopped reading") from None
    finally:
        loop.remove_writer(fd)


async def send_zero_copy(
    conn: Connection, sock_fd: int, file_fd: int, offset: int, count: int
) -> None:
    conn._flush()
    out = os.dup(sock_fd)  # a second fd, so the loop lets us wait for it to be writable
    try:
        while conn.transport is not None and conn.transport.get_write_buffer_size():
            await _writable(conn, out)
        end = offset + count
        while offset < end:
            if conn.closed:
                raise ConnectionClosed("connection closed")
            try:
                n = os.sendfile(out, file_fd, offset, end - offset)
            except BlockingIOError:
                await _writable(conn, out)
                continue
            if n == 0:
                raise OSError(f"the file ended {end - offset} bytes early")
            offset += n
    finally:
        os.close(out)


async def send_copied(conn: Connection, file_fd: int, offset: int, count: int) -> None:
    end = offset + count
    while offset < end:
        chunk = await asyncio.to_thread(os.pread, file_fd, min(end - offset, _PIECE), offset)
        if not chunk:
            raise OSError(f"the file ended {end - offset} bytes early")
        offset += len(chunk)
        conn._out += chunk
        conn._flush()
        await conn.drain()
