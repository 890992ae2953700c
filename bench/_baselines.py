"""Baselines other benchmarks measure against in the same run: a raw uvloop echo and pyzmq.

The raw echo is what a Python framed protocol costs with nothing on top: an
``asyncio.Protocol`` on uvloop, a 4-byte length prefix and the body, no header, no ids.
Two shapes: ``batch=False`` handles each message on its own (the server writes each
echo, the client writes one new message per reply: the BASELINES.md row), and
``batch=True`` joins every whole message of one read into one write on both ends (the
ceiling when nothing is done per message but finding its length). Each ``*_rate``
function is one timed round: ``warmup`` seconds unmeasured, then it counts replies for
``seconds`` and returns messages per second.
"""

from __future__ import annotations

import asyncio
import struct
import time
from multiprocessing.connection import Connection
from typing import cast

import uvloop
import zmq

from ._procs import Span, raise_nofile, report_port

__all__ = [
    "RawEchoServer",
    "length_prefixed",
    "raw_echo_rate",
    "serve_raw_echo",
    "serve_zmq",
    "zmq_dealer_rate",
    "zmq_req_rate",
]

_PREFIX = struct.Struct("!I")


def length_prefixed(body: bytes) -> bytes:
    return _PREFIX.pack(len(body)) + body


def _whole(buf: bytearray) -> list[int]:
    """Where each whole length-prefixed message at the start of ``buf`` ends."""
    ends = []
    pos = 0
    end = len(buf)
    while end - pos >= 4:
        (size,) = _PREFIX.unpack_from(buf, pos)
        if end - pos - 4 < size:
            break
        pos += 4 + size
        ends.append(pos)
    return ends


class RawEchoServer(asyncio.Protocol):
    """Length-prefix echo, one write per message or (``batch``) one write per read."""

    __slots__ = ("batch", "buf", "transport")

    def __init__(self, batch: bool) -> None:
        self.batch = batch
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        ends = _whole(buf)
        if not ends or self.transport is None:
            return
        if self.batch:
            self.transport.write(bytes(buf[: ends[-1]]))
        else:
            start = 0
            for end in ends:
                self.transport.write(bytes(buf[start:end]))
                start = end
        del buf[: ends[-1]]


def serve_raw_echo(ready: Connection, batch: bool = False) -> None:
    """Process target: the raw echo server on a free loopback port, until terminated."""
    raise_nofile()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: RawEchoServer(batch), "127.0.0.1", 0, backlog=4096
        )
        report_port(ready, server.sockets[0].getsockname()[1])
        await server.serve_forever()

    uvloop.run(main())


class _RawEchoClient(asyncio.Protocol):
    """Keeps ``window`` messages in flight: one write per reply or (``batch``) per read."""

    def __init__(
        self, message: bytes, window: int, batch: bool, done: asyncio.Future[None]
    ) -> None:
        self.message = message
        self.window = window
        self.batch = batch
        self.done = done
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.replies = 0
        self.inflight = 0
        self.stopping = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = stream = cast(asyncio.Transport, transport)
        self.inflight = self.window
        stream.write(self.message * self.window)

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        ends = _whole(buf)
        if not ends:
            return
        del buf[: ends[-1]]
        count = len(ends)
        self.replies += count
        self.inflight -= count
        if not self.stopping:
            self.inflight += count
            assert self.transport is not None
            if self.batch:
                self.transport.write(self.message * count)
            else:
                for _ in ends:
                    self.transport.write(self.message)
        elif not self.inflight and not self.done.done():
            self.done.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_exception(ConnectionError(f"raw echo connection lost: {exc}"))


def raw_echo_rate(
    port: int, body: bytes, window: int, seconds: float, warmup: float = 0.2, batch: bool = False
) -> float:
    async def run() -> float:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        message = length_prefixed(body)
        transport, proto = await loop.create_connection(
            lambda: _RawEchoClient(message, window, batch, done), "127.0.0.1", port
        )
        await asyncio.sleep(warmup)
        first, start = proto.replies, time.perf_counter()
        await asyncio.sleep(seconds)
        last, stop = proto.replies, time.perf_counter()
        proto.stopping = True
        await done
        transport.close()
        return (last - first) / (stop - start)

    return uvloop.run(run())


def serve_zmq(ready: Connection, kind: str) -> None:
    """Process target: a pyzmq REP (``kind="rep"``) or ROUTER echo, until terminated."""
    ctx = zmq.Context()
    sock = ctx.socket(zmq.REP if kind == "rep" else zmq.ROUTER)
    port = sock.bind_to_random_port("tcp://127.0.0.1")
    report_port(ready, port)
    if kind == "rep":
        while True:
            sock.send(sock.recv())
    while True:
        sock.send_multipart(sock.recv_multipart())


def _zmq_rate(
    port: int, kind: int, body: bytes, window: int, seconds: float, warmup: float
) -> float:
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
    sock = ctx.socket(kind)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(f"tcp://127.0.0.1:{port}")
    try:
        for _ in range(window):
            sock.send(body)
        replies = 0
        span = Span(warmup, seconds)
        while True:
            sock.recv()
            replies += 1
            if replies & 63 == 0 and span.over(replies):
                break
            sock.send(body)
        for _ in range(window - 1):
            sock.recv()
        return span.rate
    finally:
        sock.close()


def zmq_req_rate(port: int, body: bytes, seconds: float, warmup: float = 0.2) -> float:
    """REQ/REP ping-pong, one message in flight."""
    return _zmq_rate(port, zmq.REQ, body, 1, seconds, warmup)


def zmq_dealer_rate(
    port: int, body: bytes, window: int, seconds: float, warmup: float = 0.2
) -> float:
    """DEALER/ROUTER with ``window`` messages in flight, refilled one per reply."""
    return _zmq_rate(port, zmq.DEALER, body, window, seconds, warmup)
