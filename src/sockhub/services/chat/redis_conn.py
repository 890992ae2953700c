"""The node's own connections to Redis: RESP over one socket each, parsed by hiredis.

Two small asyncio protocols instead of redis-py for the two hot or delicate paths:

- ``Subscriber``, the pub/sub connection: the broker must know the moment it drops
  (whatever was published meanwhile is lost to this node and is read back from the
  streams), and redis-py's ``PubSub`` reconnects silently.
- ``Pipe``, for the scripts: commands are pipelined (written at once, answered in
  order), which costs a few microseconds a call where redis-py's per-call connection
  checkout, locking and retry logic cost tens (measured: 78 µs of CPU per EVALSHA),
  and a script is what every chat message costs.

``Opener`` keeps one of either per node (several in a Redis Cluster). Everything else
(reads, presence bookkeeping) goes through redis-py.
"""

from __future__ import annotations

import asyncio
import collections
import urllib.parse
from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar, cast

import hiredis

__all__ = ["Opener", "Pipe", "Subscriber", "connect", "encode_command"]

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

    ``on_lost`` runs once when the connection ends, for whatever reason; ``on_dropped``
    when Redis ends a subscription by itself (a Redis Cluster node that no longer
    serves the channel's slot: a fail-over, a slot moved)."""

    def __init__(
        self,
        on_message: Callable[[bytes, bytes], None],
        on_lost: Callable[[], None],
        *,
        sharded: bool,
        on_dropped: Callable[[bytes], None] | None = None,
    ) -> None:
        super().__init__()
        self._on_message = on_message
        self._on_lost = on_lost
        self._on_dropped = on_dropped
        if sharded:
            self._sub, self._unsub, self._message = b"SSUBSCRIBE", b"SUNSUBSCRIBE", b"smessage"
        else:
            self._sub, self._unsub, self._message = b"SUBSCRIBE", b"UNSUBSCRIBE", b"message"
        self._confirm = self._sub.lower()
        self._unconfirm = self._unsub.lower()
        self._asked: collections.deque[tuple[bytes, asyncio.Future[None] | None]] = (
            collections.deque()
        )
        """(channel, its subscription's future; None for an unsubscription) of each
        command sent, answered in order: an error reply is the oldest one's."""

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        error = ConnectionError("the Redis pub/sub connection closed")
        while self._asked:
            future = self._asked.popleft()[1]
            if future is not None and not future.done():
                future.set_exception(error)
        self._on_lost()

    def _push(self, reply: Any) -> bool:
        if isinstance(reply, Exception):
            if self._asked:
                future = self._asked.popleft()[1]
                if future is not None and not future.done():
                    future.set_exception(reply)
            return True
        if not (isinstance(reply, list) and reply):
            return False
        kind = reply[0]
        if kind == self._message:
            self._on_message(reply[1], reply[2])
        elif kind == self._confirm:
            if self._asked and self._asked[0][0] == reply[1]:
                future = self._asked.popleft()[1]
                if future is not None and not future.done():
                    future.set_result(None)
        elif kind == self._unconfirm:
            if self._asked and self._asked[0] == (reply[1], None):
                self._asked.popleft()
            elif self._on_dropped is not None:
                self._on_dropped(reply[1])
        return kind in (self._message, self._confirm, self._unconfirm)

    def subscribe(self, channels: Iterable[bytes]) -> asyncio.Future[list[None]]:
        """Resolves once Redis confirmed every channel (messages follow from then on);
        one command a channel (a cluster refuses channels of several slots in one)."""
        loop = asyncio.get_running_loop()
        asked: list[tuple[bytes, asyncio.Future[None] | None]] = [
            (channel, loop.create_future()) for channel in channels
        ]
        if asked:
            self._write(b"".join(encode_command(self._sub, channel) for channel, _ in asked))
            self._asked += asked
        return asyncio.gather(*(future for _, future in asked if future is not None))

    def unsubscribe(self, channel: bytes) -> None:
        self._write(encode_command(self._unsub, channel))
        self._asked.append((channel, None))


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


class Opener(Generic[P]):
    """One open connection per node URL, opened again (once, for every caller waiting)
    after it broke."""

    def __init__(self, factory: Callable[[str], Callable[[], P]]) -> None:
        self._factory = factory
        """url -> the protocol factory for a connection to it"""
        self.open: dict[str, P] = {}
        self._opening: dict[str, asyncio.Future[P]] = {}

    async def get(self, url: str) -> P:
        conn = self.open.get(url)
        if conn is not None and not conn.lost:
            return conn
        opening = self._opening.get(url)
        if opening is None:
            opening = self._opening[url] = asyncio.ensure_future(connect(url, self._factory(url)))
        try:
            conn = self.open[url] = await asyncio.shield(opening)
        finally:
            if opening.done() and self._opening.get(url) is opening:
                del self._opening[url]
        return conn

    def close(self) -> None:
        for conn in self.open.values():
            conn.close()
        self.open.clear()
