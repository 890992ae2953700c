"""The checker's side of one connection: every read bounded in time, every byte kept for
the report card."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct

__all__ = ["MAX_KEEP", "Closed", "Conn", "Silent", "open_conn"]

MAX_KEEP = 1 << 20


class Closed(Exception):
    """The server closed (or reset) the connection."""


class Silent(Exception):
    """The server said nothing within the step's time."""


class Conn:
    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, timeout: float
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.timeout = timeout
        self.seen = bytearray()

    async def send(self, data: bytes) -> None:
        try:
            self.writer.write(data)
            await asyncio.wait_for(self.writer.drain(), self.timeout)
        except (ConnectionError, OSError) as exc:
            raise Closed(str(exc)) from exc
        except TimeoutError as exc:
            raise Silent("the server stopped reading") from exc

    def _keep(self, data: bytes) -> bytes:
        if len(self.seen) < MAX_KEEP:
            self.seen += data
        return data

    async def read_some(self, timeout: float | None = None) -> bytes:
        """What one recv() returns: at least one byte, or Closed / Silent."""
        try:
            data = await asyncio.wait_for(self.reader.read(65536), timeout or self.timeout)
        except TimeoutError as exc:
            raise Silent() from exc
        except (ConnectionError, OSError) as exc:
            raise Closed(str(exc)) from exc
        if not data:
            raise Closed("closed")
        return self._keep(data)

    async def exactly(self, n: int) -> bytes:
        try:
            return self._keep(await asyncio.wait_for(self.reader.readexactly(n), self.timeout))
        except asyncio.IncompleteReadError as exc:
            self._keep(exc.partial)
            raise Closed(f"closed after {len(exc.partial)} of {n} bytes") from exc
        except TimeoutError as exc:
            raise Silent(f"fewer than {n} bytes") from exc
        except (ConnectionError, OSError) as exc:
            raise Closed(str(exc)) from exc

    async def until_quiet(self, want: int | None, quiet: float) -> bytes:
        """Bytes until ``want`` of them arrived, the server went quiet for ``quiet`` s, or closed.

        Raw formats have no length: quiet is the only end a reader can see. A server that
        never goes quiet is read up to ``MAX_KEEP`` bytes, not for ever.
        """
        out = await self.read_some()
        while (want is None or len(out) < want) and len(out) < MAX_KEEP:
            try:
                out += await self.read_some(quiet)
            except (Silent, Closed):
                break
        return out

    def abort(self) -> None:
        """Close with a reset, as a killed client on Windows does (SO_LINGER 0)."""
        sock = self.writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.writer.transport.abort()

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError, OSError, TimeoutError):
            await asyncio.wait_for(self.writer.wait_closed(), self.timeout)


async def open_conn(host: str, port: int, timeout: float) -> Conn:
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, limit=MAX_KEEP), timeout
        )
    except TimeoutError as exc:
        raise Silent(f"no connection within {timeout:g} s") from exc
    except OSError as exc:
        raise Closed(f"cannot connect: {exc.strerror or exc}") from exc
    return Conn(reader, writer, timeout)


def listening(port: int) -> bool | None:
    """Whether a TCP socket listens on ``port`` here, read from /proc without connecting.

    Connecting to find out is itself a client that connects and leaves, which is exactly
    what breaks the notes' servers that loop on recv() returning b''. None off Linux.
    """
    found = False
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            return None
        for row in rows:
            fields = row.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                found = True
    return found
