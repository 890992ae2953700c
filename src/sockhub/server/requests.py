"""The requests half of a ``ServerSession``: a frame's op admitted (its grant, its id
not in flight, the outbound budget) and run, inline or as a task counted toward
``max_inflight``; a streamed body's sink from its start to its end; and a handler's
failure answered (a ``ProtocolError`` to the client, anything else to the log).

Like ``Outbound``, this is a base class of ``ServerSession`` rather than an object it
holds, so a request costs no extra attribute hop or call; it sits between the two. What
it needs from the session is declared under ``TYPE_CHECKING`` below (or in
``Outbound``): the user and grants, the counted pauses, ``finish`` and ``close``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from ..protocol.errors import BadRequest, Internal, OpUnknown, ProtocolError, error_header
from ..protocol.fields import get_id
from ..protocol.text import escape
from .outbound import Link, Outbound
from .service import BodySink, ConnectionClosed, OpSpec, Request

if TYPE_CHECKING:
    from .app import Server

__all__ = ["INFLIGHT", "Requests"]

log = logging.getLogger("sockhub.server")

INFLIGHT = "inflight"
"""The session's pause reason while ``max_inflight`` requests are running."""


class Requests(Outbound):
    __slots__ = ("_inflight", "_requests", "_sink", "_sink_req", "_tasks")

    if TYPE_CHECKING:
        # provided by ServerSession
        user: str | None
        grants: frozenset[str]
        _pauses: dict[object, int] | None

    def __init__(self, server: Server, link: Link, kind: str, peer: str) -> None:
        super().__init__(server, link, kind, peer)
        self._requests = 0
        self._inflight: dict[int, asyncio.Task[None]] | None = None
        self._tasks: set[asyncio.Task[Any]] | None = None
        self._sink: BodySink | None = None
        """Where the streamed body being read goes, from its start to its end."""
        self._sink_req: Request | None = None

    def _own(self, task: asyncio.Task[Any]) -> None:
        if self._tasks is None:
            self._tasks = set()
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _send_error(self, exc: ProtocolError, header: dict[str, Any], rid: int | None) -> None:
        target = header.get("target")
        self.send(error_header(exc, re=rid, target=target if target.__class__ is int else None))
        if exc.fatal:
            log.info("%s %s: fatal %s: %s", self.kind, self.peer, exc.code, escape(exc.message))
            self.close()

    def _failed(self, exc: Exception, req: Request) -> None:
        """A handler raised: its protocol error goes to the client, anything else to the log."""
        if isinstance(exc, ProtocolError):
            self._send_error(exc, req.header, req.id)
            return
        log.error("op %s from %s %s failed", req.op, self.kind, self.peer, exc_info=exc)
        self._send_error(Internal("internal error; the server logged it"), req.header, req.id)

    def _admit_request(self, header: dict[str, Any]) -> tuple[OpSpec, int | None] | None:
        """The op's spec and id, or None after answering why the frame cannot run."""
        try:
            rid = get_id(header)
        except BadRequest as exc:
            self._send_error(exc, header, None)
            return None
        op = header.get("op")
        spec = self.server.ops.get(op) if op.__class__ is str else None
        try:
            if op.__class__ is not str:
                raise BadRequest("field 'op' must be a string")
            if spec is None:
                if rid is not None:
                    raise OpUnknown(f"unknown op {escape(op, 64)}")
                return None
            outbound = self.server.outbound
            if (
                spec.grant is not None and spec.grant not in self.grants
            ) or outbound.used >= outbound.total:
                self.server.permit(spec, self.grants, self.user)  # raises why, if it must
            if rid is not None and self._inflight is not None and rid in self._inflight:
                raise BadRequest(f"id {rid} is still in flight on this connection")
        except ProtocolError as exc:
            self._send_error(exc, header, rid)
            return None
        return spec, rid

    def _on_frame(self, header: dict[str, Any], body: bytes) -> None:
        admitted = self._admit_request(header)
        if admitted is None:
            return
        spec, rid = admitted
        req = Request(self, header, body, rid)  # type: ignore[arg-type]  # (a ServerSession)
        try:
            result = spec.handler(req)
        except Exception as exc:
            self._failed(exc, req)
            return
        if result is not None:
            self._run(req, result)

    def _run(self, req: Request, awaitable: Awaitable[None]) -> None:
        """Run a request as a task; every one counts toward ``max_inflight``, id or not."""
        task = self._loop.create_task(self._guard(req, awaitable))
        self._own(task)
        if req.id is not None:
            if self._inflight is None:
                self._inflight = {}
            self._inflight[req.id] = task
        self._requests += 1
        if self._requests >= self.server.limits.max_inflight:
            self._hold(INFLIGHT)

    async def _guard(self, req: Request, awaitable: Awaitable[None]) -> None:
        try:
            await awaitable
        except ConnectionClosed:
            pass
        except Exception as exc:
            self._failed(exc, req)
        finally:
            if req.id is not None and self._inflight is not None:
                self._inflight.pop(req.id, None)
            self._requests -= 1
            if self._pauses is not None and self._requests < self.server.limits.max_inflight:
                self._release(INFLIGHT)
            if self._done and not self._requests:
                self.finish()

    def _on_stream_start(self, header: dict[str, Any]) -> None:
        admitted = self._admit_request(header)
        if admitted is None:
            return
        spec, rid = admitted
        req = Request(self, header, b"", rid)  # type: ignore[arg-type]  # (a ServerSession)
        try:
            self._sink = spec.handler(req)  # type: ignore[assignment]
            self._sink_req = req
        except Exception as exc:
            self._failed(exc, req)

    def _on_stream_end(self) -> None:
        sink, self._sink = self._sink, None
        req, self._sink_req = self._sink_req, None
        if sink is None or req is None:
            return
        try:
            sink.end()
        except Exception as exc:
            self._failed(exc, req)
