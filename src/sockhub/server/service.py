"""The small interface a service sees: requests, a session to reply and push on, the context.

Services never touch sockets or transports, so one service runs unchanged behind TCP,
TLS, UNIX and the WebSocket bridge (and over UDP when its handler is synchronous).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .background import Background
    from .budget import Budget
    from .config import Config
    from .limits import Limits
    from .users import UserStore

__all__ = [
    "BodySink",
    "ConnectionClosed",
    "Handler",
    "OpSpec",
    "Request",
    "ServerContext",
    "Service",
    "Session",
]


class ConnectionClosed(ConnectionError):
    """The connection ended (by us, by the peer or by the network) while a service used it."""


class Session(Protocol):
    """One client connection as a service sees it (``server.session.ServerSession`` on
    every transport)."""

    peer: str
    """The source address (``host`` for IP, ``unix`` for UNIX sockets)."""
    kind: str
    """The transport, for logs: tcp, tls, unix, ws."""
    user: str | None
    grants: frozenset[str]
    """What the client may do now: changes to its user apply to the next request."""
    closed: bool
    """No more output is accepted: the session is closing or closed."""

    def send(self, header: dict[str, Any], body: bytes | bytearray | memoryview = b"") -> None:
        """Queue a frame; queued frames go out in one write per event-loop turn."""

    def send_raw(self, frame: bytes) -> None:
        """Queue an already encoded frame (fan-out encodes once and sends the same bytes)."""

    async def drain(self) -> None:
        """Wait until what is queued has left but for the link's low-water mark
        (raises ``ConnectionClosed`` once closed): paces a producer by the client's reading."""

    async def send_file(self, header: dict[str, Any], file: Any, offset: int, count: int) -> None:
        """Queue ``header`` with ``count`` bytes of an open file from ``offset`` as its body,
        behind what is queued, zero-copy where possible; returns once the body is written."""

    def pause_reading(self, owner: object) -> None:
        """Stop reading this client for ``owner`` (backpressure into a slow sink). Pauses are
        counted per owner: reading resumes when every owner has resumed as often."""

    def resume_reading(self, owner: object) -> None: ...

    def on_close(self, callback: Callable[[], object]) -> None:
        """Run ``callback`` once when the connection ends, however it ends."""

    def on_eof(self, callback: Callable[[], object]) -> None:
        """Run ``callback`` once when the client has sent all it ever will (EOF or ``bye``):
        a request still waiting for client frames (an upload's data) can give up then."""

    def spawn(self, coro: Coroutine[Any, Any, object]) -> asyncio.Task[object]:
        """Run a task owned by this connection: cancelled when it closes."""

    def close(self, exc: BaseException | None = None) -> None:
        """Close the connection, sending ``exc`` as a fatal error frame first when it is one."""


class Request:
    """One received request frame and the way to answer it."""

    __slots__ = ("body", "header", "id", "op", "replied", "session")

    def __init__(self, session: Session, header: dict[str, Any], body: bytes, rid: int | None):
        self.session = session
        self.header = header
        self.body = body
        self.op: str = header["op"]
        self.id = rid
        self.replied = False

    def reply(self, header: dict[str, Any], body: bytes | bytearray | memoryview = b"") -> None:
        """Send the final reply; a request without an id gets none (section 1)."""
        self.replied = True
        if self.id is not None:
            header["re"] = self.id
            self.session.send(header, body)

    def send(self, header: dict[str, Any], body: bytes | bytearray | memoryview = b"") -> None:
        """A non-final frame tied to this request (history, exec output)."""
        if self.id is not None:
            header["re"] = self.id
        self.session.send(header, body)

    def ok(self, **fields: Any) -> None:
        self.reply({"op": "ok", **fields})


class BodySink(Protocol):
    """Where a streamed body goes (file uploads): chunks, then the end, or an abort."""

    def buffer(self, size: int) -> memoryview | None:
        """A writable buffer (at most ``size`` bytes) the next body bytes may be received
        into straight from the socket, then passed to ``write`` as a slice of it; None:
        pass them as they come. Lets a sink reuse its buffers instead of a new ``bytes``
        per read."""

    def write(self, chunk: bytes | memoryview) -> None: ...

    def end(self) -> None: ...

    def abort(self) -> None:
        """The connection closed before the body ended."""


Handler = Callable[[Request], Awaitable[None] | None]
"""Answers inline and returns None, or returns an awaitable the connection runs as a task."""


def _no_body_limit(session: Session, header: dict[str, Any]) -> tuple[int, bool] | None:
    return None


@dataclass(frozen=True, slots=True)
class OpSpec:
    """One row of the op table: the op, who may call it, how its body is read, who serves it."""

    op: str
    handler: Handler
    service: str
    grant: str | None = None
    """The grant the client needs (anonymous grants count); None: anyone."""
    udp: bool = False
    """Served over UDP too; the handler must then answer inline."""
    body: Callable[[Session, dict[str, Any]], tuple[int, bool] | None] = _no_body_limit
    """Body limit and streaming for a header, or None for ``max_body``, buffered.

    A streamed op's handler returns a ``BodySink`` that receives the body."""


@dataclass(slots=True)
class ServerContext:
    """What every service may read: configuration, limits, the data folder, the users."""

    config: Config
    users: UserStore
    background: Background
    """Where a service runs its background work (``spawn``, ``every``): owned by the
    server, logged when it fails, cancelled and awaited at shutdown."""
    spools: Budget
    """The server-wide memory budget of upload spools (``memory_spools``)."""
    services: list[str] = field(default_factory=list)

    @property
    def limits(self) -> Limits:
        return self.config.limits

    @property
    def data(self) -> Path:
        return self.config.data


class Service:
    """A named group of ops with a start and a stop (databases, brokers, workers)."""

    name: str = ""

    def ops(self) -> Iterable[OpSpec]:
        return ()

    async def start(self, ctx: ServerContext) -> None:
        """Called once before the server accepts connections."""

    async def stop(self) -> None:
        """Called once after every connection has ended."""
