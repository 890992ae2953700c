"""The blocking client: plain sockets, no hidden event-loop thread, the same API shape.

An adapter over the sans-IO core (``protocol/client.py``): it reads only while a call
waits, and every event is kept for the request it belongs to, so nothing is lost and
nothing unasked is kept (frames of a request nobody waits for are dropped, and each
request's queue is bounded by the core). Timers (request deadlines, keepalive pings)
run while a call waits. ``OSError`` becomes a sockhub error in one place, ``_os_error``.
"""

from __future__ import annotations

import collections
import contextlib
import io
import select
import socket
import ssl
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from ..protocol.client_errors import ConnectError, ConnectionBroken, ConnectionClosed
from ..protocol.client_events import Chunk, Data, Failed, Fatal, Final, Partial, Push, Reply
from ..protocol.errors import SockhubError
from .address import Address
from .chat import ChatMixin
from .common import (
    DEFAULT,
    CoreView,
    Default,
    Options,
    Timeout,
    TimeResult,
    as_bytes,
    echo_fields,
    time_fields,
)
from .exec import ExecMixin
from .files import FilesMixin
from .tls import check_peer, client_context

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from .common import Settings

__all__ = ["Client"]

_RECV = 256 * 1024
_NOTHING_YET = (TimeoutError, BlockingIOError, ssl.SSLWantReadError)
_Held = collections.deque[Final | Partial | Data | Failed]
_NO = Reply({})


class Client(CoreView, ChatMixin, ExecMixin, FilesMixin):
    """A blocking connection to a sockhub server."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self.request_timeout = options.request_timeout
        self._core = options.core()
        self._sock: socket.socket | None = None
        self._pushes: collections.deque[Reply | SockhubError] = collections.deque()
        self._held: dict[int, _Held] = {}
        self.fingerprint: str | None = None
        self.pinned_now = False

    @classmethod
    def connect(cls, server: str | Address | None = None, **settings: Unpack[Settings]) -> Client:
        """Connect, read the hello, check the TLS pin, authenticate when ``user`` is given.

        Every step shares the ``timeout`` deadline; errors as for ``AsyncClient.connect``.
        """
        client = cls(Options.make(server, **settings))
        try:
            client._open()
        except BaseException:
            client._shut()
            raise
        return client

    def _open(self) -> None:
        opts = self.options
        addr = opts.address
        deadline = opts.deadline(time.monotonic(), opts.timeout)
        try:
            if addr.unix is not None:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(opts.timeout)
                sock.connect(addr.unix)
            else:
                sock = socket.create_connection((addr.host, addr.port), timeout=opts.timeout)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if opts.tls:
                sock = client_context().wrap_socket(
                    sock, server_hostname=addr.host if addr.unix is None else "localhost"
                )
        except OSError as exc:
            raise self._os_error(exc, connecting=True) from exc
        self._sock = sock
        if opts.tls:
            assert hasattr(sock, "getpeercert")
            self.fingerprint, self.pinned_now = check_peer(
                sock,  # type: ignore[arg-type]
                str(addr),
                fingerprint=opts.fingerprint,
                known_hosts=opts.known_hosts,
            )
        self._core.start(time.monotonic(), opts.timeout)
        while self._core.hello is None:
            self._pump(None)
        if opts.user is not None and opts.key is not None:
            rid, frame = self._core.auth_request(opts.user, opts.key, deadline)
            self._held[rid] = collections.deque()
            self.send_raw(frame)
            self._core.auth_reply(self._final(rid).header)

    @property
    def closed(self) -> bool:
        return self._sock is None

    # the one boundary to the socket ---------------------------------------------------

    def _live(self) -> socket.socket:
        if self._core.error is not None:
            raise self._core.error
        if self._sock is None:
            raise ConnectionClosed("the connection is closed")
        return self._sock

    def _os_error(self, exc: OSError, *, connecting: bool = False) -> SockhubError:
        """The one place an ``OSError`` of this client becomes a sockhub error."""
        addr = self.options.address
        if connecting:
            if isinstance(exc, TimeoutError):
                error: SockhubError = ConnectError(
                    f"cannot connect to {addr} within {self.options.timeout:g} s"
                )
            else:
                error = ConnectError(f"cannot connect to {addr}: {exc.strerror or exc}")
        elif isinstance(exc, TimeoutError):
            error = ConnectionBroken(
                f"the server did not read for {self.options.write_timeout:g} s"
            )
        else:
            error = ConnectionBroken(f"connection to {addr} broken: {exc.strerror or exc}")
        error.__cause__ = exc
        return error

    def _broken(self, exc: OSError) -> SockhubError:
        error = self._os_error(exc)
        self._core.broken(error)  # type: ignore[arg-type]
        self._shut()
        return error

    def send_raw(self, data: bytes) -> None:
        """Write bytes already framed, within the ``write_timeout``."""
        sock = self._live()
        sock.settimeout(self.options.write_timeout)
        try:
            sock.sendall(data)
        except OSError as exc:
            raise self._broken(exc) from exc

    def sendfile(self, src: io.BufferedReader, offset: int, count: int) -> int:
        """Send ``count`` bytes of ``src`` from ``offset`` (zero copy on plain sockets)."""
        sock = self._live()
        sock.settimeout(self.options.write_timeout)
        try:
            return sock.sendfile(src, offset, count)
        except OSError as exc:
            raise self._broken(exc) from exc

    def send_while_reading(self, data: bytes) -> None:
        """Send while still reading what the server sends, so big input cannot deadlock.

        (A command's output fills our socket while we write its input: if we only wrote,
        the server would stop reading us, the command would stop reading its input, and
        nothing would move.) What is read is kept for whoever follows that request.
        """
        view = memoryview(data)
        while view:
            sock = self._live()
            readable, writable, _ = select.select([sock], [sock], [], self.options.write_timeout)
            if not readable and not writable:
                raise self._broken(TimeoutError())
            if readable:
                self.poll()
            if writable:
                sock.settimeout(0)
                try:
                    view = view[sock.send(view) :]
                except (*_NOTHING_YET, ssl.SSLWantWriteError):
                    continue
                except OSError as exc:
                    raise self._broken(exc) from exc

    def _pump(self, until: float | None) -> None:
        """Read once (waiting until ``until`` or the core's next timer) and sort the events."""
        core = self._core
        sock = self._live()
        due = core.next_deadline()
        wake = due if until is None else until if due is None else min(due, until)
        sock.settimeout(None if wake is None else max(0.0, wake - time.monotonic()))
        try:
            data: bytes | None = sock.recv(_RECV)
        except _NOTHING_YET:
            data = None
        except OSError as exc:
            raise self._broken(exc) from exc
        if data == b"":
            core.receive_eof()
        elif data:
            core.receive_data(data)
        core.tick(time.monotonic())
        self._sort()

    def poll(self) -> None:
        """Take in what has already arrived, without waiting."""
        self._pump(time.monotonic())

    def _sort(self) -> None:
        core = self._core
        while (event := core.next_event()) is not None:
            match event:
                case Push(reply=item) | Failed(rid=None, error=item):
                    self._pushes.append(item)
                case Fatal():
                    self._shut()
                case Final(rid=rid) | Partial(rid=rid) | Data(rid=rid) | Failed(rid=int(rid)):
                    held = self._held.get(rid)
                    if held is not None:
                        held.append(event)
        out = core.data_to_send()
        if out:
            self.send_raw(out)

    def _next_for(self, rid: int) -> Final | Partial | Data | Failed:
        held = self._held[rid]
        while not held:
            self._pump(None)
        return held.popleft()

    @property
    def held_bytes(self) -> int:
        """Bytes this client holds that the program has not taken: bodies of replies
        waiting for their request, plus a frame still arriving. Bounded by the queue
        limits: what an abandoned or unread request would add is dropped."""
        held = sum(
            len(event.chunk) if event.__class__ is Data else len(getattr(event, "reply", _NO).body)
            for events in self._held.values()
            for event in events
        )
        return held + self._core.decoder.buffered

    def has_reply(self, rid: int) -> bool:
        """Something for ``rid`` has arrived and waits to be taken."""
        return bool(self._held.get(rid))

    def _final(self, rid: int) -> Reply:
        try:
            event = self._next_for(rid)
        finally:
            self._held.pop(rid, None)
            self._core.abandon(rid)
        if event.__class__ is Failed:
            raise event.error
        return event.reply  # type: ignore[union-attr]

    def _follow(self, rid: int) -> Iterator[Reply | Chunk]:
        core = self._core
        try:
            while True:
                event = self._next_for(rid)
                cls = event.__class__
                if cls is Failed:
                    raise event.error  # type: ignore[union-attr]
                if cls is Data:
                    core.taken(rid, len(event.chunk))  # type: ignore[union-attr]
                    yield event.chunk  # type: ignore[union-attr]
                    continue
                reply: Reply = event.reply  # type: ignore[union-attr]
                if cls is Final:
                    yield reply
                    return
                core.taken(rid, len(reply.body))
                yield reply
        finally:
            self._held.pop(rid, None)
            core.abandon(rid)

    # the public API -----------------------------------------------------------------

    def request(
        self,
        op: str,
        body: bytes = b"",
        *,
        request_timeout: Timeout = DEFAULT,
        **fields: Any,
    ) -> Reply:
        """Send a request and wait for its final reply; an error reply raises its exception.

        ``request_timeout`` (default: the client's; None: no limit) raises ``RequestTimeout``.
        """
        seconds = self.request_timeout if isinstance(request_timeout, Default) else request_timeout
        deadline = None if seconds is None else time.monotonic() + seconds
        rid, frame = self._core.request(op, body, deadline=deadline, **fields)
        self._held[rid] = collections.deque()
        self.send_raw(frame)
        return self._final(rid)

    def send(self, op: str, body: bytes = b"", **fields: Any) -> None:
        """Send a frame that expects no reply (no ``id``)."""
        self.send_raw(self._core.frame(op, body, **fields))

    def stream(
        self, op: str, body: bytes = b"", *, partial: Iterable[str], **fields: Any
    ) -> Iterator[Reply | Chunk]:
        """Send a request and yield every frame tied to it, the final reply last."""
        return self.follow(self.start_stream(op, body, partial=partial, **fields))

    def start_stream(
        self, op: str, body: bytes = b"", *, partial: Iterable[str], **fields: Any
    ) -> int:
        """Send a streaming request and return its id, to ``follow`` later."""
        rid, frame = self._core.request(op, body, partial=frozenset(partial), **fields)
        self._held[rid] = collections.deque()
        self.send_raw(frame)
        return rid

    def follow(self, rid: int) -> Iterator[Reply | Chunk]:
        """The frames of streaming request ``rid``; leaving early abandons the rest."""
        if rid not in self._held:
            raise KeyError(rid)
        return self._follow(rid)

    def next_push(self, timeout: float | None = None) -> Reply:
        """The next frame the server pushed unasked; TimeoutError after ``timeout`` seconds.

        ``QueueFull`` says pushes were dropped because they were not taken in time.
        """
        until = None if timeout is None else time.monotonic() + timeout
        while not self._pushes:
            if until is not None and time.monotonic() >= until:
                raise TimeoutError(f"nothing was pushed within {timeout:g} s")
            self._pump(until)
        item = self._pushes.popleft()
        if isinstance(item, BaseException):
            raise item
        self._core.push_taken()
        return item

    def pushes(self, timeout: float | None = None) -> Iterator[Reply]:
        """Pushed frames; stops after ``timeout`` seconds without one, or when the connection ends."""
        while True:
            try:
                yield self.next_push(timeout)
            except (TimeoutError, ConnectionClosed, ConnectionBroken):
                return

    def echo(self, data: bytes | str, *, upper: bool = False) -> bytes:
        return self.request("echo", as_bytes(data), **echo_fields(upper)).body

    def time(self, fmt: str | None = None, *, utc: bool = False) -> TimeResult:
        return TimeResult.from_reply(self.request("time", **time_fields(fmt, utc)))

    def ping(self) -> float:
        start = time.monotonic()
        self.request("ping")
        return time.monotonic() - start

    def close(self) -> None:
        """Say bye, read what the server still owes until it closes, then close."""
        if self._sock is not None:
            with contextlib.suppress(SockhubError):
                self.send("bye")
                self._core.closing()
                until = self.options.deadline(time.monotonic(), self.options.timeout)
                while self._sock is not None and (until is None or time.monotonic() < until):
                    self._pump(until)
        self._core.broken(ConnectionClosed("the connection is closed"))
        self._shut()

    def abort(self) -> None:
        """Close at once, without a goodbye (the connection is already in doubt)."""
        self._core.broken(ConnectionClosed("the connection is closed"))
        self._shut()

    def _shut(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        """A clean end says bye; an interrupted one (Ctrl-C, an error) just hangs up, since
        what the server still owes (the rest of a download) is no longer wanted."""
        if exc_type is None:
            self.close()
        else:
            self.abort()
