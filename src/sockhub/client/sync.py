"""The blocking client: plain sockets, no hidden event-loop thread, the same API shape.

Frames that arrive while we wait for a particular reply (pushes, replies to other
requests) are kept in order and handed out when asked for, so nothing is lost.
"""

from __future__ import annotations

import collections
import contextlib
import socket
import time
from collections.abc import Iterable, Iterator
from typing import Any

from ..protocol.errors import ProtocolError, error_from_header
from ..protocol.frames import BodyChunk, BodyEnd, Frame, FrameStart, encode_frame
from .address import Address
from .aio import Chunk
from .chat import ChatMixin
from .common import Options, Reply, TimeResult, as_bytes, echo_fields, new_core, time_fields
from .errors import ConnectError, ConnectionClosed
from .exec import ExecMixin
from .files import FilesMixin
from .tls import check_peer, client_context

__all__ = ["Client"]

_RECV = 256 * 1024


class Client(ChatMixin, ExecMixin, FilesMixin):
    """A blocking connection to a sockhub server."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self._core = new_core()
        self._sock: socket.socket | None = None
        self._pushes: collections.deque[Reply] = collections.deque()
        self._held: dict[int, collections.deque[Reply | Chunk]] = {}
        self._streaming_re: int | None = None
        self._closed_exc: BaseException | None = None
        self._last_send = time.monotonic()
        self.fingerprint: str | None = None
        self.pinned_now = False

    @classmethod
    def connect(
        cls,
        server: str | Address | None = None,
        *,
        user: str | None = None,
        key: bytes | None = None,
        tls: bool = False,
        fingerprint: str | None = None,
        known_hosts: str | None = None,
        timeout: float = 10.0,
    ) -> Client:
        """Connect, read the hello, check the TLS pin, authenticate when ``user`` is given."""
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
            client._open()
        except BaseException:
            client._shut()
            raise
        return client

    def _open(self) -> None:
        opts = self.options
        addr = opts.address
        deadline = time.monotonic() + opts.timeout
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
            raise ConnectError(f"cannot connect to {addr}: {exc.strerror or exc}") from exc
        self._sock = sock
        if opts.tls:
            assert hasattr(sock, "getpeercert")
            self.fingerprint, self.pinned_now = check_peer(
                sock,  # type: ignore[arg-type]
                str(addr),
                fingerprint=opts.fingerprint,
                known_hosts=opts.known_hosts,
            )
        try:
            while self._core.hello is None:
                self._pump(deadline)
        except TimeoutError as exc:
            raise ConnectError(f"{addr}: no sockhub hello within {opts.timeout:g} s") from exc
        except ConnectionClosed as exc:
            raise ConnectError(f"{addr} closed the connection before its hello") from exc
        if opts.user is not None and opts.key is not None:
            rid, frame = self._core.auth_request(opts.user, opts.key)
            self._write(frame)
            self._core.auth_reply(self._wait_final(rid, frozenset(), deadline).header)

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
        return self._sock is None

    # sending and receiving ----------------------------------------------------------

    def _write(self, data: bytes) -> None:
        if self._closed_exc is not None:
            raise self._closed_exc
        if self._sock is None:
            raise ConnectionClosed("the connection is closed")
        try:
            self._sock.settimeout(None)
            self._sock.sendall(data)
        except OSError as exc:
            self._fail(ConnectionClosed(f"connection broken: {exc}"))
            raise self._closed_exc from exc  # type: ignore[misc]
        self._last_send = time.monotonic()

    def _fail(self, exc: BaseException) -> None:
        if self._closed_exc is None:
            self._closed_exc = exc
        self._shut()

    def _pump(self, deadline: float | None) -> None:
        """Read once from the socket and sort every complete event; TimeoutError at deadline."""
        core = self._core  # every event is sorted right after its bytes arrive, below
        if self._closed_exc is not None:
            raise self._closed_exc
        sock = self._sock
        if sock is None:
            raise ConnectionClosed("the connection is closed")
        wait = None if deadline is None else deadline - time.monotonic()
        if wait is not None and wait <= 0:
            raise TimeoutError("timed out waiting for the server")
        sock.settimeout(wait)
        try:
            data = sock.recv(_RECV)
        except TimeoutError:
            raise
        except OSError as exc:
            self._fail(ConnectionClosed(f"connection broken: {exc}"))
            raise self._closed_exc from exc  # type: ignore[misc]
        if not data:
            self._fail(ConnectionClosed("the server closed the connection"))
            raise self._closed_exc  # type: ignore[misc]
        core.receive_data(data)
        while True:
            try:
                event = core.next_event()
            except ProtocolError as exc:
                self._fail(exc)
                raise
            if event is None:
                return
            self._sort(event)

    def _sort(self, event: Any) -> None:
        cls = event.__class__
        if cls is BodyChunk:
            if self._streaming_re is not None:
                self._held.setdefault(self._streaming_re, collections.deque()).append(
                    Chunk(event.data)
                )
            return
        if cls is BodyEnd:
            self._streaming_re = None
            return
        header = event.header
        re = header.get("re")
        if re is None and header.get("op") == "error" and header.get("fatal") is False:
            re = header.get("target")  # exec.in/exec.kill failed: tell the run it targeted
        if re is None:
            if header.get("op") == "error":
                self._fail(error_from_header(header))
            elif header.get("op") == "ping" and header.get("id") is not None:
                self._write(encode_frame({"op": "pong", "re": header["id"]}))
            else:
                self._pushes.append(Reply(header, event.body if cls is Frame else b""))
            return
        if cls is FrameStart:
            self._streaming_re = re
        self._held.setdefault(re, collections.deque()).append(
            Reply(header, event.body if cls is Frame else b"")
        )

    def _next_for(self, rid: int, deadline: float | None) -> Reply | Chunk:
        while True:
            held = self._held.get(rid)
            if held:
                return held.popleft()
            self._keepalive()
            self._pump(self._slice(deadline))

    def _slice(self, deadline: float | None) -> float:
        """Wake at least every third of the idle timeout to keep the connection alive."""
        hello = self._core.hello
        idle = float(hello.limits.get("idle_timeout", 300)) if hello else 300.0
        step = time.monotonic() + max(0.5, idle / 3)
        return step if deadline is None else min(step, deadline)

    def _keepalive(self) -> None:
        hello = self._core.hello
        idle = float(hello.limits.get("idle_timeout", 300)) if hello else 300.0
        if time.monotonic() - self._last_send > idle / 3:
            self._write(encode_frame({"op": "ping"}))

    def _wait_final(self, rid: int, partial: frozenset[str], deadline: float | None) -> Reply:
        for item in self._follow(rid, partial, deadline):
            if isinstance(item, Reply) and item.op not in partial:
                return item
        raise ConnectionClosed("no final reply")  # pragma: no cover - _follow ends on final

    def _follow(
        self, rid: int, partial: frozenset[str], deadline: float | None
    ) -> Iterator[Reply | Chunk]:
        try:
            while True:
                try:
                    item = self._next_for(rid, deadline)
                except TimeoutError:
                    if deadline is not None and time.monotonic() >= deadline:
                        raise
                    continue
                if isinstance(item, Reply):
                    if item.op == "error":
                        raise error_from_header(item.header)
                    yield item
                    if item.op not in partial:
                        return
                else:
                    yield item
        finally:
            self._held.pop(rid, None)

    # the public API -----------------------------------------------------------------

    def request(
        self, op: str, body: bytes = b"", *, timeout: float | None = None, **fields: Any
    ) -> Reply:
        """Send a request and wait for its final reply; an error reply raises its exception."""
        rid, frame = self._core.request(op, body, **fields)
        self._write(frame)
        deadline = None if timeout is None else time.monotonic() + timeout
        return self._wait_final(rid, frozenset(), deadline)

    def send(self, op: str, body: bytes = b"", **fields: Any) -> None:
        """Send a frame that expects no reply (no ``id``)."""
        self._write(encode_frame({"op": op, **fields}, body))

    def stream(
        self, op: str, body: bytes = b"", *, partial: Iterable[str], **fields: Any
    ) -> Iterator[Reply | Chunk]:
        """Send a request and yield every frame tied to it, the final reply last."""
        rid = self.start_stream(op, body, **fields)
        return self.follow(rid, partial=partial)

    def start_stream(self, op: str, body: bytes = b"", **fields: Any) -> int:
        rid, frame = self._core.request(op, body, **fields)
        self._write(frame)
        return rid

    def follow(self, rid: int, *, partial: Iterable[str]) -> Iterator[Reply | Chunk]:
        return self._follow(rid, frozenset(partial), None)

    def next_push(self, timeout: float | None = None) -> Reply:
        """The next frame the server pushed unasked; TimeoutError after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._pushes:
            self._keepalive()
            try:
                self._pump(self._slice(deadline))
            except TimeoutError:
                if deadline is not None and time.monotonic() >= deadline:
                    raise
        return self._pushes.popleft()

    def pushes(self, timeout: float | None = None) -> Iterator[Reply]:
        """Pushed frames; stops after ``timeout`` seconds without one, or when the connection ends."""
        while True:
            try:
                yield self.next_push(timeout)
            except (TimeoutError, ConnectionClosed):
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
        if self._sock is None:
            return
        with contextlib.suppress(ConnectionError, ProtocolError, TimeoutError):
            self.send("bye")
            deadline = time.monotonic() + self.options.timeout
            while self._sock is not None:
                self._pump(deadline)
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
            self._shut()
