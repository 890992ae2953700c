"""The node's own connections to Redis: RESP over one socket each, parsed by hiredis.

Two small asyncio protocols instead of redis-py for the two hot or delicate paths:

- ``Subscriber``, the pub/sub connection: the broker must know the moment it drops
  (whatever was published meanwhile is lost to this node and is read back from the
  streams), and redis-py's ``PubSub`` reconnects silently.
- ``Pipe``, for the scripts: commands are pipelined (written at once, answered in
  order), which costs a few microseconds a call where redis-py's per-call connection
  checkout, locking and retry logic cost tens (measured: 78 µs of CPU per EVALSHA),
  and a script is what every chat message costs.

Everything else (reads, presence bookkeeping) goes through redis-py.
"""

from __future__ import annotations

import asyncio
import collections
import urllib.parse
from collections.abc import Callable, Iterable
from typing import Any, TypeVar, cast

import hiredis

__all__ = ["Pipe", "Subscriber", "connect", "encode_command"]

P = TypeVar("P", bound="_Resp")


def encode_command(*args: bytes | str | int) -> bytes:
    """One command in RESP."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


class _Resp(asyncio.Protocol):
    """A RESP connection: replies that are not pushes answer commands in order."""

    def __init__(self) -> None:
        self._reader = hiredis.Reader()
        self._transport: asyncio.Transport | None = None
        self._replies: collections.deque[asyncio.Future[Any]] = collections.deque()
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        error = ConnectionError("the connection to Redis closed")
        while self._replies:
            reply = self._replies.popleft()
            if not reply.done():
                reply.set_exception(error)

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        while (reply := self._reader.gets()) is not False:
            if not self._push(reply) and self._replies:
                future = self._replies.popleft()
                if future.done():
                    continue  # its caller gave up (timeout); the order stays right
                if isinstance(reply, Exception):
                    future.set_exception(reply)
                else:
                    future.set_result(reply)

    def _push(self, reply: Any) -> bool:
        """Handle a reply that answers no command (pub/sub); True if it was one."""
        return False

    def command(self, *args: bytes | str | int) -> asyncio.Future[Any]:
        """Send a command now; the future resolves to its reply (``hiredis.ReplyError``
        for an error reply, ``ConnectionError`` if the connection ends first)."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._write(encode_command(*args))
        self._replies.append(future)
        return future

    def _write(self, data: bytes) -> None:
        if self._transport is None or self.lost:
            raise ConnectionError("the connection to Redis is closed")
        self._transport.write(data)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


class Pipe(_Resp):
    """Pipelined commands (the broker's scripts)."""


class Subscriber(_Resp):
    """Subscribes to (shard) channels; hands every message to ``on_message``.

    ``on_lost`` runs once when the connection ends, for whatever reason."""

    def __init__(
        self,
        on_message: Callable[[bytes, bytes], None],
        on_lost: Callable[[], None],
        *,
        sharded: bool,
    ) -> None:
        super().__init__()
        self._on_message = on_message
        self._on_lost = on_lost
        if sharded:
            self._sub, self._unsub, self._message = b"SSUBSCRIBE", b"SUNSUBSCRIBE", b"smessage"
        else:
            self._sub, self._unsub, self._message = b"SUBSCRIBE", b"UNSUBSCRIBE", b"message"
        self._confirm = self._sub.lower()
        self._unconfirm = self._unsub.lower()
        self._pending: dict[bytes, list[asyncio.Future[None]]] = {}

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        error = ConnectionError("the Redis pub/sub connection closed")
        for futures in self._pending.values():
            for future in futures:
                if not future.done():
                    future.set_exception(error)
        self._pending.clear()
        self._on_lost()

    def _push(self, reply: Any) -> bool:
        if not (isinstance(reply, list) and reply):
            return False
        kind = reply[0]
        if kind == self._message:
            self._on_message(reply[1], reply[2])
        elif kind == self._confirm:
            for future in self._pending.pop(reply[1], ()):
                if not future.done():
                    future.set_result(None)
        return kind in (self._message, self._confirm, self._unconfirm)

    def subscribe(self, channels: Iterable[bytes]) -> asyncio.Future[list[None]]:
        """Resolves once Redis confirmed every channel (messages follow from then on)."""
        loop = asyncio.get_running_loop()
        wanted = list(channels)
        futures = []
        for channel in wanted:
            future: asyncio.Future[None] = loop.create_future()
            self._pending.setdefault(channel, []).append(future)
            futures.append(future)
        if wanted:
            self._write(encode_command(self._sub, *wanted))
        return asyncio.gather(*futures)

    def unsubscribe(self, channel: bytes) -> None:
        self._write(encode_command(self._unsub, channel))


async def connect(url: str, factory: Callable[[], P]) -> P:
    """Open a connection to the Redis at ``url`` (``redis://``, ``unix://``), logged in
    (AUTH) and on its database (SELECT) when the URL names them."""
    parts = urllib.parse.urlsplit(url)
    loop = asyncio.get_running_loop()
    if parts.scheme == "unix":
        _, conn = await loop.create_unix_connection(factory, parts.path)
    elif parts.scheme == "rediss":
        raise ConnectionError("rediss:// (TLS to Redis) is not supported yet")
    else:
        host = parts.hostname or "localhost"
        _, conn = await loop.create_connection(factory, host, parts.port or 6379)
    if parts.password:
        user = urllib.parse.unquote(parts.username or "default")
        await conn.command("AUTH", user, urllib.parse.unquote(parts.password))
    database = parts.path.strip("/") or dict(urllib.parse.parse_qsl(parts.query)).get("db", "")
    if database and database != "0" and not isinstance(conn, Subscriber):
        await conn.command("SELECT", database)
    return conn
