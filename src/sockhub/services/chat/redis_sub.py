"""The node's pub/sub connection to Redis: one socket, RESP parsed by hiredis.

A plain asyncio protocol rather than redis-py's ``PubSub``, because the broker must know
the moment the connection drops (everything published meanwhile is lost to this node
and has to be read back from the streams), and redis-py reconnects silently.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any, cast

import hiredis

__all__ = ["Subscriber", "encode_command"]


def encode_command(*args: bytes | str) -> bytes:
    """One command in RESP."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg.encode() if isinstance(arg, str) else arg
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


class Subscriber(asyncio.Protocol):
    """Subscribes to (shard) channels; hands every message to ``on_message``.

    ``on_lost`` runs once when the connection ends, for whatever reason."""

    def __init__(
        self,
        on_message: Callable[[bytes, bytes], None],
        on_lost: Callable[[], None],
        *,
        sharded: bool,
    ) -> None:
        self._on_message = on_message
        self._on_lost = on_lost
        self._sub, self._unsub = (
            (b"SSUBSCRIBE", b"SUNSUBSCRIBE")
            if sharded
            else (
                b"SUBSCRIBE",
                b"UNSUBSCRIBE",
            )
        )
        self._message = b"smessage" if sharded else b"message"
        self._confirm = self._sub.lower()
        self._reader = hiredis.Reader()
        self._transport: asyncio.Transport | None = None
        self._pending: dict[bytes, list[asyncio.Future[None]]] = {}
        self._replies: list[asyncio.Future[Any]] = []
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        error = ConnectionError("the Redis pub/sub connection closed")
        for futures in self._pending.values():
            for future in futures:
                if not future.done():
                    future.set_exception(error)
        for reply in self._replies:
            if not reply.done():
                reply.set_exception(error)
        self._pending.clear()
        self._replies.clear()
        self._on_lost()

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        while (reply := self._reader.gets()) is not False:
            self._handle(reply)

    def _handle(self, reply: Any) -> None:
        if isinstance(reply, list) and reply:
            kind = reply[0]
            if kind == self._message:
                self._on_message(reply[1], reply[2])
            elif kind == self._confirm:
                for future in self._pending.pop(reply[1], ()):
                    if not future.done():
                        future.set_result(None)
            return
        # a plain reply: to AUTH (sent before any subscription)
        if self._replies:
            future = self._replies.pop(0)
            if isinstance(reply, Exception):
                future.set_exception(reply)
            else:
                future.set_result(reply)

    def command(self, *args: bytes | str) -> asyncio.Future[Any]:
        """A command with a plain reply (AUTH), sent before any subscription."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._replies.append(future)
        self._write(encode_command(*args))
        return future

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

    def _write(self, data: bytes) -> None:
        if self._transport is None or self.lost:
            raise ConnectionError("the Redis pub/sub connection is closed")
        self._transport.write(data)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
