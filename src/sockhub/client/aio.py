"""The asyncio client: ``await AsyncClient.connect(...)``, then requests, streams and pushes.

Replies are matched to requests by ``re``, so any number of requests may be in flight on
one connection (``request`` returns a future at once; awaiting it is optional).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import AsyncIterator, Iterable
from typing import Any

from ..protocol.errors import ProtocolError, error_from_header
from ..protocol.frames import BodyChunk, Frame, FrameStart, encode_frame
from .address import Address
from .chat import AsyncChatMixin
from .common import Options, Reply, TimeResult, as_bytes, echo_fields, new_core, time_fields
from .errors import ConnectError, ConnectionClosed
from .exec import AsyncExecMixin
from .files import AsyncFilesMixin
from .tls import check_peer, client_context

__all__ = ["AsyncClient", "Chunk"]

_PUSH_HIGH = 10_000
_STREAM_HIGH = 256
_FLUSH_AT = 4096
"""Queued frames leave once they reach this many bytes, so the server starts on a burst
of pipelined requests while the rest is still being built."""
_WRITE_NOW = 64 * 1024
"""Frames at least this big skip the queue (after flushing it): no extra copy."""


class Chunk(bytes):
    """A piece of a streamed body (a downloaded file), delivered in order after its header."""


class _Stream:
    __slots__ = ("done", "items", "partial", "waiter")

    def __init__(self, partial: frozenset[str]) -> None:
        self.items: collections.deque[Reply | Chunk | BaseException] = collections.deque()
        self.partial = partial
        self.waiter: asyncio.Future[None] | None = None
        self.done = False

    def put(self, item: Reply | Chunk | BaseException) -> None:
        self.items.append(item)
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class _Protocol(asyncio.Protocol):
    def __init__(self, client: AsyncClient) -> None:
        self.client = client

    def data_received(self, data: bytes) -> None:
        self.client._data(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.client._lost(exc)

    def pause_writing(self) -> None:
        self.client._write_paused = True

    def resume_writing(self) -> None:
        self.client._write_paused = False
        self.client._wake_writers()


class AsyncClient(AsyncChatMixin, AsyncExecMixin, AsyncFilesMixin):
    """A connection to a sockhub server for asyncio programs."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self._core = new_core()
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._futures: dict[int, asyncio.Future[Reply]] = {}
        self._streams: dict[int, _Stream] = {}
        self._streaming: _Stream | None = None
        self._pushes: collections.deque[Reply] = collections.deque()
        self._push_waiter: asyncio.Future[None] | None = None
        self._hello_waiter: asyncio.Future[None] = self._loop.create_future()
        self._closed_exc: BaseException | None = None
        self._closed = self._loop.create_future()
        self._write_paused = False
        self._write_waiters: list[asyncio.Future[None]] = []
        self._out = bytearray()
        self._held: bytearray | None = None
        self._corked = False
        self._reading_paused = False
        self._keepalive: asyncio.Task[None] | None = None
        self.fingerprint: str | None = None
        self.pinned_now = False

    # connecting ---------------------------------------------------------------------

    @classmethod
    async def connect(
        cls,
        server: str | Address | None = None,
        *,
        user: str | None = None,
        key: bytes | None = None,
        tls: bool = False,
        fingerprint: str | None = None,
        known_hosts: str | None = None,
        timeout: float = 10.0,
        keepalive: bool = True,
    ) -> AsyncClient:
        """Connect, read the hello, check the TLS pin, and authenticate when ``user`` is given.

        Raises ``ConnectError`` when the server cannot be reached or proven, and the
        protocol error (``AuthFailed``, ``LimitBusy``...) when the server refuses us.
        """
        options = Options.make(
            server,
            user=user,
            key=key,
            tls=tls,
            fingerprint=fingerprint,
            known_hosts=known_hosts,
            timeout=timeout,
        )
        client = cls(options)
        try:
            await asyncio.wait_for(client._open(), timeout)
        except TimeoutError as exc:
            client._abort()
            raise ConnectError(
                f"{options.address}: no sockhub answer within {timeout:g} s"
            ) from exc
        except BaseException:
            client._abort()
            raise
        if keepalive:
            client._keepalive = client._loop.create_task(client._keep_alive())
        return client

    async def _open(self) -> None:
        opts = self.options
        addr = opts.address
        ssl_ctx = client_context() if opts.tls else None
        try:
            if addr.unix is not None:
                transport, _ = await self._loop.create_unix_connection(
                    lambda: _Protocol(self),
                    addr.unix,
                    ssl=ssl_ctx,
                    server_hostname="localhost" if ssl_ctx else None,
                )
            else:
                transport, _ = await self._loop.create_connection(
                    lambda: _Protocol(self),
                    addr.host,
                    addr.port,
                    ssl=ssl_ctx,
                    server_hostname=addr.host if ssl_ctx else None,
                )
        except OSError as exc:
            raise ConnectError(f"cannot connect to {addr}: {exc.strerror or exc}") from exc
        self._transport = transport
        if ssl_ctx is not None:
            self.fingerprint, self.pinned_now = check_peer(
                transport.get_extra_info("ssl_object"),
                str(addr),
                fingerprint=opts.fingerprint,
                known_hosts=opts.known_hosts,
            )
        await self._hello_waiter
        if opts.user is not None and opts.key is not None:
            rid, frame = self._core.auth_request(opts.user, opts.key)
            future = self._register(rid)
            self._write(frame)
            self._core.auth_reply((await future).header)

    @property
    def hello(self) -> Any:
        return self._core.hello

    @property
    def user(self) -> str | None:
        return self._core.user

    @property
    def grants(self) -> list[str]:
        return self._core.grants

    @property
    def closed(self) -> bool:
        return self._closed.done()

    # requests -------------------------------------------------------------------------

    def _check_open(self) -> asyncio.Transport:
        if self._closed_exc is not None:
            raise self._closed_exc
        if self._transport is None or self._transport.is_closing():
            raise ConnectionClosed("the connection is closed")
        return self._transport

    def _register(self, rid: int) -> asyncio.Future[Reply]:
        future: asyncio.Future[Reply] = self._loop.create_future()
        self._futures[rid] = future
        return future

    def request(self, op: str, body: bytes = b"", **fields: Any) -> asyncio.Future[Reply]:
        """Send a request now; the future gives its final reply or raises its error."""
        self._check_open()
        rid, frame = self._core.request(op, body, **fields)
        future = self._futures[rid] = self._loop.create_future()
        self._write(frame)
        return future

    def send(self, op: str, body: bytes = b"", **fields: Any) -> None:
        """Send a frame that expects no reply (no ``id``): exec input, a kill, a keepalive."""
        self._check_open()
        self._write(encode_frame({"op": op, **fields}, body))

    async def stream(
        self, op: str, body: bytes = b"", *, partial: Iterable[str], **fields: Any
    ) -> AsyncIterator[Reply | Chunk]:
        """Send a request and yield every frame tied to it: the ``partial`` ops, then the
        final reply (an error reply raises). Streamed bodies arrive as ``Chunk`` items."""
        rid = self.start_stream(op, body, partial=partial, **fields)
        async for item in self.follow(rid):
            yield item

    def start_stream(
        self, op: str, body: bytes = b"", *, partial: Iterable[str], **fields: Any
    ) -> int:
        """Send a streaming request and return its id, to ``follow`` later."""
        self._check_open()
        rid, frame = self._core.request(op, body, **fields)
        self._streams[rid] = _Stream(frozenset(partial))
        self._write(frame)
        return rid

    async def follow(self, rid: int) -> AsyncIterator[Reply | Chunk]:
        stream = self._streams.get(rid)
        if stream is None:
            raise KeyError(rid)
        try:
            while True:
                while not stream.items:
                    if stream.done:
                        return
                    stream.waiter = self._loop.create_future()
                    await stream.waiter
                    stream.waiter = None
                item = stream.items.popleft()
                if self._reading_paused and len(stream.items) < _STREAM_HIGH // 4:
                    self._resume_reading()
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            self._streams.pop(rid, None)

    async def drain(self) -> None:
        """Wait while the transport's write buffer is over its high watermark."""
        self._check_open()
        self._flush()
        if self._write_paused:
            waiter: asyncio.Future[None] = self._loop.create_future()
            self._write_waiters.append(waiter)
            await waiter

    async def next_push(self, timeout: float | None = None) -> Reply:
        """The next frame the server pushed unasked (chat messages, events)."""
        while not self._pushes:
            if self._closed_exc is not None:
                raise self._closed_exc
            self._push_waiter = self._loop.create_future()
            try:
                await asyncio.wait_for(self._push_waiter, timeout)
            finally:
                self._push_waiter = None
        if self._reading_paused and len(self._pushes) < _PUSH_HIGH // 4:
            self._resume_reading()
        return self._pushes.popleft()

    async def pushes(self) -> AsyncIterator[Reply]:
        """Every pushed frame until the connection closes."""
        while True:
            try:
                yield await self.next_push()
            except ConnectionClosed:
                return

    # the ops of section 5 and 2 -------------------------------------------------------

    async def echo(self, data: bytes | str, *, upper: bool = False) -> bytes:
        reply = await self.request("echo", as_bytes(data), **echo_fields(upper))
        return reply.body

    async def time(self, fmt: str | None = None, *, utc: bool = False) -> TimeResult:
        return TimeResult.from_reply(await self.request("time", **time_fields(fmt, utc)))

    async def ping(self) -> float:
        """Round-trip time in seconds."""
        start = self._loop.time()
        await self.request("ping")
        return self._loop.time() - start

    # closing ----------------------------------------------------------------------------

    async def close(self) -> None:
        """Say bye, let the server flush what it owes, and close."""
        if self._keepalive is not None:
            self._keepalive.cancel()
        if self._transport is None or self._closed.done():
            return
        with contextlib.suppress(ConnectionError, ProtocolError):
            self.send("bye")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._closed), self.options.timeout)
        self._abort()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # writing ----------------------------------------------------------------------------

    def _write(self, frame: bytes) -> None:
        """Send a frame: the first of an event-loop turn at once, the rest joined.

        A lone request (ping-pong) leaves without delay; the frames that follow it in
        the same turn (pipelined requests) are queued and leave together at the end of
        the turn, one system call per batch instead of one each.
        """
        if self._held is not None:  # a file body is being sent: frames wait behind it
            self._held += frame
            return
        assert self._transport is not None
        if not self._corked:
            self._corked = True
            self._loop.call_soon(self._uncork)
            self._transport.write(frame)
        elif len(frame) >= _WRITE_NOW:
            self._flush()
            self._transport.write(frame)
        else:
            self._out += frame
            if len(self._out) >= _FLUSH_AT:
                self._flush()

    def _uncork(self) -> None:
        self._corked = False
        self._flush()

    def _flush(self) -> None:
        """Write what is queued now (``drain`` and a full queue do not wait for the turn)."""
        if not self._out:
            return
        data = bytes(self._out)
        self._out.clear()
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.write(data)

    # what the protocol object calls -------------------------------------------------

    def _data(self, data: bytes) -> None:
        core = self._core
        try:
            core.receive_data(data)
            # once the hello is in, every event comes straight from the decoder
            next_event = core.next_event if core.hello is None else core.decoder.next_event
            while (event := next_event()) is not None:
                self._event(event)
        except ProtocolError as exc:
            self._fail(exc)
            self._abort()
        if core.hello is not None and not self._hello_waiter.done():
            self._hello_waiter.set_result(None)

    def _event(self, event: Any) -> None:
        cls = event.__class__
        if cls is BodyChunk:
            if self._streaming is not None:
                self._streaming.put(Chunk(event.data))
                self._maybe_pause(len(self._streaming.items), _STREAM_HIGH)
            return
        if cls is not Frame and cls is not FrameStart:
            self._streaming = None
            return
        header = event.header
        body = event.body if cls is Frame else b""
        re = header.get("re")
        op = header.get("op")
        if re is None and op == "error" and header.get("fatal") is False:
            re = header.get("target")  # exec.in/exec.kill failed: tell the run it targeted
        if re is None:
            if op == "error":
                self._fail(error_from_header(header))
            elif op == "ping" and header.get("id") is not None:
                self.send("pong", re=header["id"])
            else:
                self._pushes.append(Reply(header, body))
                waiter = self._push_waiter
                if waiter is not None and not waiter.done():
                    waiter.set_result(None)
                self._maybe_pause(len(self._pushes), _PUSH_HIGH)
            return
        future = self._futures.pop(re, None)
        if future is not None:
            if not future.done():
                if op == "error":
                    future.set_exception(error_from_header(header))
                else:
                    future.set_result(Reply(header, body))
            return
        stream = self._streams.get(re)
        if stream is None:
            return
        if cls is FrameStart:
            self._streaming = stream
            stream.put(Reply(header))
            return
        if op == "error":
            stream.put(error_from_header(header))
            stream.done = True
        else:
            stream.put(Reply(header, body))
            if op not in stream.partial:
                stream.done = True
        self._maybe_pause(len(stream.items), _STREAM_HIGH)

    def _maybe_pause(self, queued: int, high: int) -> None:
        if queued >= high and not self._reading_paused and self._transport is not None:
            self._reading_paused = True
            self._transport.pause_reading()

    def _resume_reading(self) -> None:
        self._reading_paused = False
        if self._transport is not None and not self._transport.is_closing():
            self._transport.resume_reading()

    def _wake_writers(self) -> None:
        waiters, self._write_waiters = self._write_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _fail(self, exc: BaseException) -> None:
        if self._closed_exc is None:
            self._closed_exc = exc
        for future in self._futures.values():
            if not future.done():
                future.set_exception(exc)
        self._futures.clear()
        for stream in self._streams.values():
            if not stream.done:
                stream.put(exc)
                stream.done = True
        if not self._hello_waiter.done():
            self._hello_waiter.set_exception(
                exc if isinstance(exc, ProtocolError) else ConnectError(str(exc))
            )
        waiter = self._push_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        for w in self._write_waiters:
            if not w.done():
                w.set_exception(exc)
        self._write_waiters = []

    def _lost(self, exc: Exception | None) -> None:
        self._fail(ConnectionClosed(f"connection closed{f': {exc}' if exc else ''}"))
        if not self._closed.done():
            self._closed.set_result(None)
        if self._keepalive is not None:
            self._keepalive.cancel()

    def _abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    async def _keep_alive(self) -> None:
        """A ping without id every third of the idle timeout, so listeners stay connected."""
        hello = self._core.hello
        idle = float(hello.limits.get("idle_timeout", 300)) if hello else 300.0
        while True:
            await asyncio.sleep(max(0.5, idle / 3))
            try:
                self.send("ping")
            except (ConnectionError, ProtocolError):
                return
