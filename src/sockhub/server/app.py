"""The server: listeners, the op table, connection accounting, timers and shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import secrets
import signal
import stat
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._version import __version__
from ..protocol.auth import METHOD
from ..protocol.client import PROTO
from ..protocol.errors import AuthRequired, LimitBusy, ProtocolError, ServerShuttingDown
from .config import Config
from .connection import Connection
from .core_ops import CORE_OPS
from .limits import Limits
from .ratelimit import TokenBuckets
from .service import OpSpec, ServerContext, Service
from .tls import ensure_self_signed, file_fingerprint, server_context
from .udp import UdpEndpoint
from .users import UserStore

__all__ = ["Listening", "Server"]

log = logging.getLogger("sockhub.server")


@dataclass(slots=True)
class Listening:
    """Where the server ended up listening, for the start-up banner and for tests."""

    tcp: list[tuple[str, int]] = field(default_factory=list)
    udp: list[tuple[str, int]] = field(default_factory=list)
    unix: Path | None = None
    tls_fingerprint: str | None = None
    tls_new: bool = False


class Server:
    """One sockhub server process. ``async with Server(...)`` starts and stops it."""

    def __init__(self, config: Config, services: Iterable[Service] = ()) -> None:
        self.config = config
        self.limits: Limits = config.limits
        self.services = list(services)
        self.users = UserStore(config.data)
        self.ctx = ServerContext(config, self.users, [s.name for s in self.services if s.name])
        self.anonymous_grants = frozenset(config.anonymous_grants)
        self.ops: dict[str, OpSpec] = {}
        for spec in (*CORE_OPS, *(op for s in self.services for op in s.ops())):
            if spec.op in self.ops:
                raise ValueError(f"op {spec.op} is served twice")
            self.ops[spec.op] = spec
        self.connections: set[Connection] = set()
        self.per_ip: Counter[str] = Counter()
        self.auth_failures = TokenBuckets(
            self.limits.auth_failures_per_ip / self.limits.auth_failure_window,
            self.limits.auth_failures_per_ip,
        )
        self.udp_replies = TokenBuckets(self.limits.udp_replies_per_sec, self.limits.udp_burst)
        self.linger = 2.0
        self.listening = Listening()
        self.shutting_down = False
        self._servers: list[asyncio.Server] = []
        self._udp: list[asyncio.DatagramTransport] = []
        self._started: list[Service] = []
        """Services whose start succeeded: only they are stopped."""
        self._sweeper: asyncio.Task[None] | None = None
        self._stopped = asyncio.Event()
        self._hello: dict[str, Any] = {
            "op": "hello",
            "proto": PROTO,
            "server": f"sockhub/{__version__}",
            "auth": [METHOD],
            "services": self.ctx.services,
            "limits": self.limits.advertised(),
        }
        self.loop = asyncio.get_running_loop()

    # what connections ask -----------------------------------------------------------

    def new_nonce(self) -> bytes:
        return secrets.token_bytes(32)

    def hello_header(self, nonce: str) -> dict[str, Any]:
        return {**self._hello, "nonce": nonce}

    def admit(self, conn: Connection) -> ProtocolError | None:
        """Count a new connection in, or say why it is refused (section 2.8)."""
        if self.shutting_down:
            return ServerShuttingDown("the server is stopping")
        if len(self.connections) >= self.limits.max_connections:
            return LimitBusy("the server has too many connections; try later", fatal=True)
        if self.per_ip[conn.peer] >= self.limits.max_connections_per_ip:
            return LimitBusy("too many connections from your address", fatal=True)
        self.connections.add(conn)
        self.per_ip[conn.peer] += 1
        return None

    def forget(self, conn: Connection) -> None:
        if conn in self.connections:
            self.connections.discard(conn)
            left = self.per_ip[conn.peer] - 1
            if left > 0:
                self.per_ip[conn.peer] = left
            else:
                del self.per_ip[conn.peer]
            if self.shutting_down and not self.connections:
                self._stopped.set()

    def grant_error(self, spec: OpSpec, user: str | None) -> ProtocolError:
        if user is None:
            return AuthRequired(f"{spec.op} needs a user with the '{spec.grant}' grant; log in")
        return AuthRequired(f"user {user} lacks the '{spec.grant}' grant that {spec.op} needs")

    # lifecycle ------------------------------------------------------------------------

    async def __aenter__(self) -> Server:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.shutdown()

    async def start(self) -> Listening:
        cfg = self.config
        cfg.data.mkdir(parents=True, exist_ok=True)
        for service in self.services:
            await service.start(self.ctx)
            self._started.append(service)
        ssl_ctx = None
        if cfg.tls:
            cert, key = cfg.tls_cert, cfg.tls_key
            if cert is None or key is None:
                cert, key, self.listening.tls_new = ensure_self_signed(cfg.data / "tls")
            ssl_ctx = server_context(cert, key)
            self.listening.tls_fingerprint = file_fingerprint(cert)
        kind = "tls" if cfg.tls else "tcp"
        tcp = await self.loop.create_server(
            lambda: Connection(self, kind),
            cfg.host,
            cfg.port,
            reuse_address=True,
            reuse_port=cfg.workers > 1 or None,
            ssl=ssl_ctx,
            backlog=4096,
            ssl_handshake_timeout=self.limits.handshake_timeout if ssl_ctx else None,
        )
        self._servers.append(tcp)
        for sock in tcp.sockets:
            addr = sock.getsockname()
            self.listening.tcp.append((str(addr[0]), int(addr[1])))
        if cfg.udp:
            port = self.listening.tcp[0][1]
            for host, _ in self.listening.tcp:
                transport, _proto = await self.loop.create_datagram_endpoint(
                    lambda: UdpEndpoint(self),
                    local_addr=(host, port),
                    reuse_port=cfg.workers > 1 or None,
                )
                self._udp.append(transport)
                addr = transport.get_extra_info("sockname")
                self.listening.udp.append((str(addr[0]), int(addr[1])))
        if cfg.unix is not None:
            await self._start_unix(cfg.unix, ssl_ctx)
        self._sweeper = self.loop.create_task(self._sweep())
        return self.listening

    async def _start_unix(self, path: Path, ssl_ctx: Any) -> None:
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISSOCK(path.lstat().st_mode):
                path.unlink()  # a stale socket from an earlier run
        unix = await self.loop.create_unix_server(
            lambda: Connection(self, "unix"), str(path), ssl=ssl_ctx, backlog=4096
        )
        self._servers.append(unix)
        self.listening.unix = path

    async def _sweep(self) -> None:
        """Check every connection's timers about once a second; no timer per connection."""
        while True:
            await asyncio.sleep(min(1.0, self.limits.handshake_timeout / 4))
            now = self.loop.time()
            for conn in list(self.connections):
                conn.check_timers(now)

    def request_stop(self) -> None:
        self._stopped.set()

    async def serve_forever(self) -> None:
        """Serve until SIGTERM or SIGINT, then shut down gracefully."""
        # what start-up made lives as long as the process: keep the collector off it, so
        # its scans during fan-out and pipelining walk only short-lived objects
        gc.freeze()
        for sig in (signal.SIGTERM, signal.SIGINT):
            self.loop.add_signal_handler(sig, self.request_stop)
        try:
            await self._stopped.wait()
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                self.loop.remove_signal_handler(sig)
        await self.shutdown()

    async def shutdown(self) -> None:
        """Stop accepting, tell every client, wait a little, then cut what is left."""
        if self.shutting_down:
            return
        self.shutting_down = True
        self._stopped.clear()
        for srv in self._servers:
            srv.close()
        for transport in self._udp:
            transport.close()
        if self._sweeper is not None:
            self._sweeper.cancel()
        for conn in list(self.connections):
            conn.close(ServerShuttingDown("the server is stopping"))
        if self.connections:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopped.wait(), self.limits.shutdown_grace)
        for conn in list(self.connections):
            if conn.transport is not None:
                conn.transport.abort()
        for srv in self._servers:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(srv.wait_closed(), 1.0)
        for service in reversed(self._started):
            try:
                await service.stop()
            except Exception:
                log.exception("stopping service %s failed", service.name)
        if self.listening.unix is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.listening.unix)
