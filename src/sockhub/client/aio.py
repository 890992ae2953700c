"""The asyncio client: ``await AsyncClient.connect(...)``, then requests, streams and pushes.

An adapter over the sans-IO core (``protocol/client.py``): bytes from the transport go
to the core, its events resolve futures and fill stream and push queues, its timers run
on one loop timer. Replies are matched to requests by ``re``, so any number of requests
may be in flight on one connection (``request`` returns a future at once). ``OSError``
becomes ``ConnectError``/``ConnectionBroken`` in one place, ``_os_error``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import math
from collections.abc import AsyncIterator, Iterable
from typing import TYPE_CHECKING, Any

from ..protocol.client_errors import ConnectError, ConnectionBroken, ConnectionClosed
from ..protocol.client_events import Chunk, Data, Failed, Fatal, Final, Partial, Push, Reply
from ..protocol.errors import SockhubError
from .address import Address
from .aio_writer import Writer
from .chat import AsyncChatMixin
from .common import (
    DEFAULT,
    CoreView,
    Options,
    Timeout,
    TimeResult,
    as_bytes,
    echo_fields,
    time_fields,
)
from .exec import AsyncExecMixin
from .files import AsyncFilesMixin
from .tls import check_peer, client_context

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from .common import Settings

__all__ = ["AsyncClient", "Chunk"]


class _Stream:
    """The frames of one streaming request waiting for the task that follows it."""

    __slots__ = ("done", "items", "waiter")

    def __init__(self) -> None:
        self.items: collections.deque[Reply | Chunk | BaseException] = collections.deque()
        self.waiter: asyncio.Future[None] | None = None
        self.done = False

    def put(self, item: Reply | Chunk | BaseException, last: bool = False) -> None:
        self.items.append(item)
        self.done = self.done or last
        _wake(self.waiter)


def _wake(waiter: asyncio.Future[None] | None) -> None:
    if waiter is not None and not waiter.done():
        waiter.set_result(None)


class _Protocol(asyncio.Protocol):
    def __init__(self, client: AsyncClient) -> None:
        self.client = client

    def data_received(self, data: bytes) -> None:
        self.client._data(data)

    def eof_received(self) -> None:
        self.client._core.receive_eof()
        self.client._events()

    def connection_lost(self, exc: Exception | None) -> None:
        self.client._lost(exc)

    def pause_writing(self) -> None:
        self.client.writer.pause()

    def resume_writing(self) -> None:
        self.client.writer.resume()


class AsyncClient(CoreView, AsyncChatMixin, AsyncExecMixin, AsyncFilesMixin):
    """A connection to a sockhub server for asyncio programs."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self.request_timeout = options.request_timeout
        self._core = options.core()
        self._loop = asyncio.get_running_loop()
        self._futures: dict[int, asyncio.Future[Reply]] = {}
        self._streams: dict[int, _Stream] = {}
        self._body: int | None = None
        self._pushes: collections.deque[Reply | SockhubError] = collections.deque()
        self._push_waiter: asyncio.Future[None] | None = None
        self._hello_waiter: asyncio.Future[None] = self._loop.create_future()
        self._closed = self._loop.create_future()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf  # when the armed timer fires; inf: none is armed
        self._reading_paused = False
        self.writer = Writer(self._loop, options.write_timeout, self._fail)
        self.fingerprint: str | None = None
        self.pinned_now = False

    # connecting ---------------------------------------------------------------------

    @classmethod
    async def connect(
        cls, server: str | Address | None = None, **settings: Unpack[Settings]
    ) -> AsyncClient:
        """Connect, read the hello, check the TLS pin, and authenticate when ``user`` is given.

        Every step shares the ``timeout`` deadline. Raises ``ConnectError`` when the server
        cannot be reached, ``NotSockhubServer`` when it does not speak sockhub, and the
        wire error (``AuthFailed``, ``LimitBusy``...) when it refuses us.
        """
        client = cls(Options.make(server, **settings))
        try:
            await client._open()
        except BaseException:
            client._abort()
            raise
        return client

    async def _open(self) -> None:
        opts = self.options
        addr = opts.address
        ssl_ctx = client_context() if opts.tls else None
        make = lambda: _Protocol(self)  # noqa: E731
        try:
            if addr.unix is not None:
                opening = self._loop.create_unix_connection(
                    make, addr.unix, ssl=ssl_ctx, server_hostname="localhost" if ssl_ctx else None
                )
            else:
                opening = self._loop.create_connection(
                    make,
                    addr.host,
                    addr.port,
                    ssl=ssl_ctx,
                    server_hostname=addr.host if ssl_ctx else None,
                )
            transport, _ = await asyncio.wait_for(opening, opts.timeout)
        except TimeoutError as exc:
            raise ConnectError(f"cannot connect to {addr} within {opts.timeout:g} s") from exc
        except OSError as exc:
            raise self._os_error(exc, connecting=True) from exc
        self.writer.attach(transport)
        if ssl_ctx is not None:
            self.fingerprint, self.pinned_now = check_peer(
                transport.get_extra_info("ssl_object"),
                str(addr),
                fingerprint=opts.fingerprint,
                known_hosts=opts.known_hosts,
            )
        self._core.start(self._loop.time(), opts.timeout)
        self._arm(self._core.next_deadline())
        await self._hello_waiter
        if opts.user is not None and opts.key is not None:
            deadline = opts.deadline(self._loop.time(), opts.timeout)
            rid, frame = self._core.auth_request(opts.user, opts.key, deadline)
            future = self._futures[rid] = self._loop.create_future()
            self._arm(deadline)
            self.writer.write(frame)
            self._core.auth_reply((await future).header)

    @property
    def closed(self) -> bool:
        return self._closed.done()

    # requests -------------------------------------------------------------------------

    def request(
        self,
        op: str,
        body: bytes = b"",
        *,
        request_timeout: Timeout = DEFAULT,
        **fields: Any,
    ) -> asyncio.Future[Reply]:
        """Send a request now; the future gives its final reply or raises its error.

        ``request_timeout`` (default: the client's; None: no limit) fails the future with
        ``RequestTimeout`` when no reply came by then.
        """
        seconds = self.request_timeout if request_timeout is DEFAULT else request_timeout
        deadline = None if seconds is None else self._loop.time() + seconds
        rid, frame = self._core.request(op, body, deadline=deadline, **fields)
        future = self._futures[rid] = self._loop.create_future()
        if deadline is not None and deadline < self._timer_at:
            self._arm(deadline)
        self.writer.write(frame)
        return future

    def send(self, op: str, body: bytes = b"", **fields: Any) -> None:
        """Send a frame that expects no reply (no ``id``): exec input, a kill, a keepalive."""
        self.writer.write(self._core.frame(op, body, **fields))

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
        rid, frame = self._core.request(op, body, partial=frozenset(partial), **fields)
        self._streams[rid] = _Stream()
        self.writer.write(frame)
        return rid

    async def follow(self, rid: int) -> AsyncIterator[Reply | Chunk]:
        """The frames of streaming request ``rid``; leaving early abandons the rest."""
        stream = self._streams.get(rid)
        if stream is None:
            raise KeyError(rid)
        core = self._core
        try:
            while True:
                while not stream.items:
                    if stream.done:
                        return
                    stream.waiter = self._loop.create_future()
                    await stream.waiter
                    stream.waiter = None
                item = stream.items.popleft()
                if isinstance(item, BaseException):
                    raise item
                core.taken(rid, len(item) if isinstance(item, Chunk) else len(item.body))
                if self._reading_paused and rid == self._body:
                    self._resume_body(rid)
                yield item
        finally:
            self._streams.pop(rid, None)
            core.abandon(rid)
            if self._reading_paused and rid == self._body:
                self._resume_body(None)

    async def drain(self) -> None:
        """Wait while the transport's buffer is full; ``ConnectionBroken`` past the
        ``write_timeout``."""
        self._check_open()
        await self.writer.drain()

    def _check_open(self) -> None:
        if self._core.error is not None:
            raise self._core.error

    async def next_push(self, timeout: float | None = None) -> Reply:
        """The next frame the server pushed unasked (chat messages, events).

        ``QueueFull`` says pushes were dropped because they were not taken in time.
        """
        while not self._pushes:
            self._check_open()
            self._push_waiter = self._loop.create_future()
            try:
                await asyncio.wait_for(self._push_waiter, timeout)
            finally:
                self._push_waiter = None
        item = self._pushes.popleft()
        if isinstance(item, BaseException):
            raise item
        self._core.push_taken()
        return item

    async def pushes(self) -> AsyncIterator[Reply]:
        """Every pushed frame until the connection ends."""
        while True:
            try:
                yield await self.next_push()
            except (ConnectionClosed, ConnectionBroken):
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
        if self._closed.done() or not self.writer.attached:
            self._core.broken(ConnectionClosed("the connection is closed"))
            self._events()
            self._abort()
            return
        with contextlib.suppress(SockhubError):
            self.send("bye")
        self._core.closing()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._closed), self.options.timeout)
        self._core.broken(ConnectionClosed("the connection is closed"))
        self._events()
        self._abort()

    def abort(self) -> None:
        """Close at once, without a goodbye (the connection is already in doubt)."""
        self._fail(ConnectionClosed("the connection is closed"))

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # what the protocol object and the timer call ------------------------------------

    def _data(self, data: bytes) -> None:
        self._core.receive_data(data)
        self._events()

    def _events(self) -> None:
        """Act on every event the core has: the one place replies meet their waiters."""
        core = self._core
        futures = self._futures
        while (event := core.next_event()) is not None:
            if event.__class__ is Final:
                future = futures.pop(event.rid, None)
                if future is not None:
                    if not future.done():
                        future.set_result(event.reply)
                    continue
            self._event(event)
        out = core.data_to_send()
        if out:
            with contextlib.suppress(ConnectionClosed):  # closing: the ping is moot
                self.writer.write(out)
        if core.hello is not None and not self._hello_waiter.done():
            self._hello_waiter.set_result(None)
            self._arm(core.next_deadline())  # from the hello's deadline to the keepalive

    def _event(self, event: Final | Partial | Data | Failed | Push | Fatal) -> None:
        match event:
            case Push(reply=reply) | Failed(rid=None, error=reply):
                self._pushes.append(reply)
                _wake(self._push_waiter)
            case Fatal(error=error):
                self._fail(error)
            case Failed(rid=int(rid), error=error):
                future = self._futures.pop(rid, None)
                if future is not None:
                    if not future.done():
                        future.set_exception(error)
                elif (stream := self._streams.get(rid)) is not None:
                    stream.put(error, last=True)
            case Data(rid=rid, chunk=chunk):
                if (stream := self._streams.get(rid)) is not None:
                    stream.put(chunk)
                    self._hold_body(rid, stream)
            case Final(rid=rid, reply=reply) | Partial(rid=rid, reply=reply):
                if (stream := self._streams.get(rid)) is not None:
                    stream.put(reply, last=isinstance(event, Final))

    def _hold_body(self, rid: int, stream: _Stream) -> None:
        """A streamed body (a download) waits in the transport, not in memory, while its
        reader is behind: the server sends nothing else during a body anyway."""
        if not self._reading_paused and self._core.crowded(rid, 2):
            self._reading_paused = True
            self._body = rid
            self.writer.pause_reading()

    def _resume_body(self, rid: int | None) -> None:
        if rid is None or not self._core.crowded(rid, 4):
            self._reading_paused = False
            self._body = None
            self.writer.resume_reading()

    def _arm(self, when: float | None) -> None:
        if when is None:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = when
        self._timer = self._loop.call_at(when, self._tick)

    def _tick(self) -> None:
        self._timer = None
        self._timer_at = math.inf
        self._core.tick(self._loop.time())
        self._events()
        self._arm(self._core.next_deadline())

    def _fail(self, exc: SockhubError) -> None:
        """The connection is over: every waiter learns why."""
        self._core.broken(exc)  # type: ignore[arg-type]
        exc = self._core.error or exc
        futures, self._futures = self._futures, {}
        for future in futures.values():
            if not future.done():
                future.set_exception(exc)
        for stream in self._streams.values():
            if not stream.done:
                stream.put(exc, last=True)
        if not self._hello_waiter.done():
            self._hello_waiter.set_exception(exc)
        _wake(self._push_waiter)
        self.writer.fail(exc)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
            self._timer_at = math.inf
        self._abort()

    def _lost(self, exc: Exception | None) -> None:
        if exc is not None:
            self._fail(self._os_error(exc))
        else:
            self._core.receive_eof()
            self._events()
        if not self._closed.done():
            self._closed.set_result(None)

    def _os_error(self, exc: Exception, *, connecting: bool = False) -> SockhubError:
        """The one place an ``OSError`` of this client becomes a sockhub error."""
        addr = self.options.address
        if connecting:
            error: SockhubError = ConnectError(
                f"cannot connect to {addr}: {getattr(exc, 'strerror', None) or exc}"
            )
        else:
            error = ConnectionBroken(f"connection to {addr} broken: {exc}")
        error.__cause__ = exc
        return error

    def _abort(self) -> None:
        self.writer.abort()
