"""The sans-IO client core both clients drive: bytes in, typed events out; requests in, bytes out.

In the style of h11 and python-websockets: the adapter feeds what it read to
``receive_data`` (or ``receive_eof``), takes events from ``next_event`` until None, writes
``data_to_send()`` (pongs and keepalive pings the core made by itself), and calls ``tick``
at ``next_deadline()``. Routing of replies by ``re``, the hello, auth, request deadlines,
keepalive and the queue policy live here once:

- every streaming request's queue is bounded (frames and bytes the program has not taken
  yet, reported back with ``taken``); overflow fails that request alone with
  ``QueueFull`` and drops its later frames, so a stream nobody reads never stalls the
  connection, other requests, or pings;
- pushes are bounded the same way; past the bound they are dropped and one
  ``Failed(None, QueueFull)`` says so.
"""

from __future__ import annotations

import base64
import itertools
import math
from collections import deque
from typing import Any

from . import auth
from .client_errors import (
    ConnectionBroken,
    ConnectionClosed,
    LocalProtocolError,
    NotSockhubServer,
    QueueFull,
    RemoteProtocolError,
    RequestTimeout,
)
from .client_events import (
    Chunk,
    ClientEvent,
    Data,
    Failed,
    Fatal,
    Final,
    Partial,
    Push,
    Reply,
)
from .client_hello import PROTO, Hello, foreign, no_hello
from .errors import AuthFailed, FrameBad, FrameTooLarge, ProtocolError, error_from_header
from .frames import (
    DEFAULT_MAX_HEADER,
    MAX_ID,
    MAX_SIZE,
    BodyChunk,
    BodyEnd,
    Decoder,
    Frame,
    FrameStart,
    encode_frame,
)

__all__ = ["PROTO", "ClientConnection", "Hello", "reply_error"]

MAX_HEADER = DEFAULT_MAX_HEADER * 16
MAX_BODY = 16 * 1024 * 1024
"""Largest reply body held in memory (file bodies are streamed, never held)."""
QUEUE_SIZE = 256
QUEUE_BYTES = 16 * 1024 * 1024
PUSH_QUEUE_SIZE = 10_000
STREAMED_REPLY_OPS = frozenset({"file.data"})
DEADLINE_SLACK = 0.01
"""Request deadlines this close together expire in one tick (at most this late), so many
requests timing out one after another cost one scan, not one each."""
_SNIFF = 256


class _Stream:
    """A streaming request: which ops are partial, and what waits untaken."""

    __slots__ = ("bytes", "dropping", "items", "partial")

    def __init__(self, partial: frozenset[str]) -> None:
        self.partial = partial
        self.items = 0
        self.bytes = 0
        self.dropping = False


class ClientConnection:
    """State one client connection keeps regardless of how its bytes move."""

    def __init__(
        self,
        *,
        peer: str = "the server",
        max_header: int = MAX_HEADER,
        max_body: int = MAX_BODY,
        queue_size: int = QUEUE_SIZE,
        queue_bytes: int = QUEUE_BYTES,
        push_queue_size: int = PUSH_QUEUE_SIZE,
        keepalive: bool = True,
    ) -> None:
        self.peer = peer
        self.decoder = Decoder(max_header=max_header, policy=self._policy)
        self._max_body = max_body
        self.queue_size = queue_size
        self.queue_bytes = queue_bytes
        self.push_queue_size = push_queue_size
        self.hello: Hello | None = None
        self.user: str | None = None
        self.grants: list[str] = []
        self.error: ProtocolError | ConnectionClosed | ConnectionBroken | None = None
        self._first = b""
        self._ids = itertools.count(1)
        self._auth: tuple[int, bytes, bytes, str] | None = None
        self._streams: dict[int, _Stream] = {}
        self._streaming: int | None = None
        self._due: dict[int, float] = {}
        self._earliest = math.inf
        self._hello_due: float | None = None
        self._hello_wait: float | None = None
        self._started = 0.0
        self._keepalive = keepalive
        self._ping_due: float | None = None
        self._pushes = 0
        self._pushes_lost = False
        self._ready: deque[ClientEvent] = deque()
        self._out = bytearray()
        self._bye = False
        self._server_max_body = MAX_SIZE

    def _policy(self, header: dict[str, Any]) -> tuple[int, bool]:
        if header.get("op") in STREAMED_REPLY_OPS:
            return (MAX_SIZE, True)  # a whole file, streamed to disk: never held in memory
        return (self._max_body, False)

    # starting -----------------------------------------------------------------------

    def start(self, now: float, hello_timeout: float | None) -> None:
        """The transport is up: from ``now`` the server has ``hello_timeout`` s to speak."""
        self._started = now
        self._hello_wait = hello_timeout
        self._hello_due = None if hello_timeout is None else now + hello_timeout

    # outgoing -----------------------------------------------------------------------

    def next_id(self) -> int:
        n = next(self._ids)
        if n > MAX_ID:
            self._ids = itertools.count(2)
            return 1
        return n

    def request(
        self,
        op: str,
        body: bytes | bytearray | memoryview = b"",
        *,
        partial: frozenset[str] | None = None,
        deadline: float | None = None,
        **fields: Any,
    ) -> tuple[int, bytes]:
        """A request frame with a fresh id. ``partial``: the ops of the frames that come
        before its final reply (a streaming request); ``deadline``: when it times out."""
        if self.error is not None:
            raise self.error
        if body and len(body) > self._server_max_body:
            raise LocalProtocolError(
                f"a body of {len(body)} bytes is over the server's max_body"
                f" of {self._server_max_body}"
            )
        rid = next(self._ids)
        if rid > MAX_ID:
            rid = self.next_id()
        if partial is not None:
            self._streams[rid] = _Stream(partial)
        if deadline is not None:
            # one dict entry a request, no timer structure: the scan for what expired runs
            # only when the earliest deadline comes (see ``tick``)
            self._due[rid] = deadline
            if deadline < self._earliest:
                self._earliest = deadline
        return rid, encode_frame({"op": op, "id": rid, **fields}, body)

    def frame(self, op: str, body: bytes | bytearray | memoryview = b"", **fields: Any) -> bytes:
        """A frame that expects no reply (no ``id``): exec input, a kill, ``bye``."""
        self._check_open()
        if op == "bye":
            self._bye = True
        return encode_frame({"op": op, **fields}, body)

    def data_to_send(self) -> bytes:
        """What the core itself wants sent (pongs, keepalive pings); empty when nothing."""
        if not self._out:
            return b""
        data = bytes(self._out)
        self._out.clear()
        return data

    def _check_open(self) -> None:
        if self.error is not None:
            raise self.error

    # the program's side of the queues -------------------------------------------------

    def taken(self, rid: int, size: int = 0) -> None:
        """The program took one item (of ``size`` bytes) of request ``rid``'s frames."""
        stream = self._streams.get(rid)
        if stream is not None:
            stream.items -= 1
            stream.bytes -= size

    def crowded(self, rid: int, share: int) -> bool:
        """Request ``rid`` holds more than 1/``share`` of its bounds untaken."""
        stream = self._streams.get(rid)
        if stream is None:
            return False
        return stream.items * share > self.queue_size or stream.bytes * share > self.queue_bytes

    def push_taken(self) -> None:
        self._pushes -= 1
        if self._pushes < self.push_queue_size:
            self._pushes_lost = False

    def abandon(self, rid: int) -> None:
        """Nobody waits for ``rid`` any more: drop whatever still comes for it."""
        self._due.pop(rid, None)
        stream = self._streams.get(rid)
        if stream is not None:
            stream.dropping = True

    def closing(self) -> None:
        """This side is closing: an end of the stream from now on is ``ConnectionClosed``."""
        self._bye = True

    # timers -------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """When ``tick`` must run next (the hello, a request deadline, a keepalive ping)."""
        times = [t for t in (self._hello_due, self._ping_due) if t is not None]
        if self._due:
            times.append(self._earliest + DEADLINE_SLACK)  # may be early: then tick rescans
        return min(times) if times else None

    def tick(self, now: float) -> None:
        """Act on what is due at ``now``; events and bytes to send may follow."""
        if self.error is not None:
            return
        if self.hello is None:
            if self._hello_due is not None and now >= self._hello_due:
                self._fatal(no_hello(self.peer, self._first, self._hello_wait))
            return
        if self._ping_due is not None and now >= self._ping_due:
            self._out += encode_frame({"op": "ping"})
            self._ping_due = now + self._ping_every()
        if self._due and now >= self._earliest:
            self._expire(now)

    def _expire(self, now: float) -> None:
        """Fail every request past its deadline; find the earliest of those still open."""
        late = [rid for rid, due in self._due.items() if due <= now]
        for rid in late:
            self.abandon(rid)
            self._ready.append(
                Failed(rid, RequestTimeout(f"request {rid}: no reply within its deadline"))
            )
        self._earliest = min(self._due.values(), default=math.inf)

    def _ping_every(self) -> float:
        """A third of the server's idle timeout, so a quiet connection stays open."""
        idle = self.hello.limit("idle_timeout", 300.0) if self.hello else 300.0
        return max(0.5, idle / 3)

    # incoming -----------------------------------------------------------------------

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        if self.hello is None and len(self._first) < _SNIFF:
            self._first += bytes(data[: _SNIFF - len(self._first)])
        self.decoder.receive_data(data)
        if self.hello is None and self.error is None:
            named = foreign(self.peer, self._first, complete=False)
            if named is not None:
                self._fatal(named)

    def receive_eof(self) -> None:
        """The server ended the stream (read returned nothing)."""
        if self.error is not None:
            return
        if self.hello is None:
            self._fatal(no_hello(self.peer, self._first, None))
        elif self._bye:
            self._fatal(ConnectionClosed("the connection is closed"))
        else:
            self._fatal(ConnectionBroken(f"{self.peer} closed the connection"))

    def broken(self, exc: ConnectionBroken | ConnectionClosed | ProtocolError) -> None:
        """The adapter's transport failed (the ``OSError`` is ``exc.__cause__``)."""
        if self.error is None:
            self._fatal(exc)

    def _fatal(self, exc: ProtocolError | ConnectionClosed | ConnectionBroken) -> None:
        self.error = exc
        self._due.clear()
        self._streams.clear()
        self._ready.append(Fatal(exc))

    def next_event(self) -> ClientEvent | None:
        """The next event, or None until more bytes (or a tick) come."""
        while True:
            if self._ready:
                return self._ready.popleft()
            if self.error is not None:
                return None
            try:
                event = self.decoder.next_event()
            except (FrameBad, FrameTooLarge) as exc:
                self._fatal(self._undecodable(exc))
                continue
            if event is None:
                return None
            cls = event.__class__
            if cls is Frame and self.hello is not None:
                # the common case first, in line: a whole reply to a plain request
                header = event.header  # type: ignore[union-attr]
                re = header.get("re")
                if re.__class__ is int and re not in self._streams:
                    op = header.get("op")
                    if op.__class__ is str and op != "error":
                        if self._due:
                            self._due.pop(re, None)
                        return Final(re, Reply(header, event.body))  # type: ignore[union-attr]
            if cls is BodyChunk:
                out = self._chunk(event.data)  # type: ignore[union-attr]
            elif cls is BodyEnd:
                self._streaming = None
                continue
            else:
                out = self._frame(event)  # type: ignore[arg-type]
            if out is not None:
                return out

    def _undecodable(self, exc: ProtocolError) -> ProtocolError:
        if self.hello is None:
            return foreign(self.peer, self._first, complete=True) or NotSockhubServer(
                f"{self.peer} is not a sockhub server: {exc.message}"
            )
        error = RemoteProtocolError(f"{self.peer} sent a bad frame: {exc.message}")
        error.__cause__ = exc
        return error

    def _chunk(self, data: bytes) -> ClientEvent | None:
        rid = self._streaming
        if rid is None:
            return None
        return self._queued(rid, Data(rid, Chunk(data)), len(data))

    def _frame(self, event: Frame | FrameStart) -> ClientEvent | None:
        header = event.header
        if self.hello is None:
            self._hello(header)
            return None
        re = header.get("re")
        op = header.get("op")
        if re.__class__ is not int or op.__class__ is not str:
            if re is not None or op.__class__ is not str:
                self._bad_reply(header)
                return None
            return self._unasked(header, event)
        body = event.body if event.__class__ is Frame else b""
        if self._due:
            self._due.pop(re, None)
        stream = self._streams.get(re) if self._streams else None
        if stream is None:
            if op == "error":
                return Failed(re, error_from_header(header))
            return Final(re, Reply(header, body))
        if event.__class__ is FrameStart:
            self._streaming = re
            return self._queued(re, Partial(re, Reply(header)), 0)
        if op == "error":
            del self._streams[re]
            return None if stream.dropping else Failed(re, error_from_header(header))
        if op in stream.partial:
            return self._queued(re, Partial(re, Reply(header, body)), len(body))
        del self._streams[re]
        return None if stream.dropping else Final(re, Reply(header, body))

    def _queued(self, rid: int, event: Partial | Data, size: int) -> ClientEvent | None:
        """``event`` for a streaming request, within its bounds; the overflow fails it."""
        stream = self._streams.get(rid)
        if stream is None or stream.dropping:
            return None
        stream.items += 1
        stream.bytes += size
        if stream.items > self.queue_size or stream.bytes > self.queue_bytes:
            stream.dropping = True
            return Failed(
                rid,
                QueueFull(
                    f"request {rid}: more than {self.queue_size} frames or"
                    f" {self.queue_bytes} bytes were not taken; its later frames are dropped"
                ),
            )
        return event

    def _unasked(self, header: dict[str, Any], event: Frame | FrameStart) -> ClientEvent | None:
        """A frame without ``re``: a ping to answer, a connection error, or a push."""
        op = header["op"]
        if op == "error":
            target = header.get("target")
            if target.__class__ is int and header.get("fatal") is False:
                self._due.pop(target, None)  # exec.in/exec.kill failed: tell the run it targeted
                stream = self._streams.pop(target, None)
                if stream is not None and stream.dropping:
                    return None
                return Failed(target, error_from_header(header))
            if target is not None:
                self._bad_reply(header)
                return None
            self._fatal(error_from_header(header))
            return None
        if op == "ping":
            if header.get("id").__class__ is int:
                self._out += encode_frame({"op": "pong", "re": header["id"]})
            return None
        if event.__class__ is FrameStart:
            self._bad_reply(header)  # a streamed body must belong to a request
            return None
        if self._pushes >= self.push_queue_size:
            if self._pushes_lost:
                return None
            self._pushes_lost = True
            return Failed(
                None,
                QueueFull(
                    f"more than {self.push_queue_size} pushes were not taken; later ones were dropped"
                ),
            )
        self._pushes += 1
        return Push(Reply(header, event.body))  # type: ignore[union-attr]

    def _bad_reply(self, header: dict[str, Any]) -> None:
        bad = [k for k in ("re", "target") if k in header and header[k].__class__ is not int]
        what = f"a non-integer {bad[0]!r}" if bad else "a frame without a string 'op'"
        self._fatal(RemoteProtocolError(f"{self.peer} sent {what}"))

    def _hello(self, header: dict[str, Any]) -> None:
        try:
            self.hello = Hello.from_header(header, self.peer)
        except ProtocolError as exc:
            self._fatal(exc)
            return
        self._hello_due = None
        self._first = b""
        self._server_max_body = int(self.hello.limit("max_body", MAX_SIZE))
        if self._keepalive:
            self._ping_due = self._started + self._ping_every()

    # auth ---------------------------------------------------------------------------

    def auth_request(
        self, user: str, key: bytes, deadline: float | None = None
    ) -> tuple[int, bytes]:
        """The ``auth`` frame for this connection's hello nonce."""
        if self.hello is None:
            raise LocalProtocolError("auth before the server's hello arrived")
        if auth.METHOD not in self.hello.auth:
            raise AuthFailed(f"server does not offer {auth.METHOD}")
        cnonce = auth.new_nonce()
        mac = auth.client_mac(key, self.hello.nonce, cnonce, user)
        rid, frame = self.request(
            "auth",
            deadline=deadline,
            method=auth.METHOD,
            user=user,
            cnonce=base64.b64encode(cnonce).decode(),
            mac=mac.hex(),
        )
        self._auth = (rid, key, cnonce, user)
        return rid, frame

    def auth_reply(self, header: dict[str, Any]) -> list[str]:
        """Check the server's mac on the auth reply; the grants it gave on success."""
        if self._auth is None or self.hello is None:
            raise LocalProtocolError("auth_reply without an auth request")
        rid, key, cnonce, user = self._auth
        self._auth = None
        expected = auth.server_mac(key, self.hello.nonce, cnonce, user)
        if header.get("re") != rid or not auth.verify(expected, header.get("mac")):
            raise AuthFailed("the server could not prove it knows your key (wrong server?)")
        grants = header.get("grants")
        self.user = user
        self.grants = [g for g in grants if isinstance(g, str)] if isinstance(grants, list) else []
        return self.grants


def reply_error(header: dict[str, Any]) -> ProtocolError | None:
    """The exception an ``error`` reply stands for, or None for any other reply."""
    return error_from_header(header) if header.get("op") == "error" else None
