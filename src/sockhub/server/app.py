"""The server: listeners, the op table, connection accounting, timers and shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import logging
import os
import secrets
import signal
import socket
import ssl
import stat
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._version import __version__
from ..protocol.auth import METHOD
from ..protocol.client import PROTO
from ..protocol.errors import AuthFailed, AuthRequired, LimitBusy, ProtocolError, ServerShuttingDown
from .background import Background
from .budget import Budget
from .config import Config
from .core_ops import CORE_OPS
from .limits import Limits
from .ratelimit import TokenBuckets
from .service import OpSpec, ServerContext, Service
from .session import ServerSession
from .stream import StreamAdapter, accept_tls
from .tls import ensure_self_signed, file_fingerprint, server_context
from .trim import Trimmer
from .udp import UdpEndpoint
from .users import UserStore

__all__ = ["Listening", "Server"]

log = logging.getLogger("sockhub.server")

USERS_POLL = 1.0
"""How often users.json is checked for changes to apply to open sessions."""


@dataclass(slots=True)
class Listening:
    """Where the server ended up listening, for the start-up banner and for tests."""

    tcp: list[tuple[str, int]] = field(default_factory=list)
    udp: list[tuple[str, int]] = field(default_factory=list)
    unix: Path | None = None
    tls_fingerprint: str | None = None
    tls_new: bool = False


PORT_ATTEMPTS = 8
"""Tries to find one free port for TCP and UDP when the configured port is 0."""


class Server:
    """One sockhub server process. ``async with Server(...)`` starts and stops it."""

    def __init__(self, config: Config, services: Iterable[Service] = ()) -> None:
        self.config = config
        self.limits: Limits = config.limits
        self.services = list(services)
        self.users = UserStore(config.data)
        self.background = Background()
        self.bodies = Budget("bodies", self.limits.memory_bodies)
        self.outbound = Budget("outbound", self.limits.memory_outbound)
        self.spools = Budget("spools", self.limits.memory_spools)
        self.trimmer = Trimmer((self.bodies, self.outbound, self.spools))
        self._users_applied = 0
        self.ctx = ServerContext(
            config,
            self.users,
            self.background,
            self.spools,
            [s.name for s in self.services if s.name],
        )
        self.anonymous_grants = frozenset(config.anonymous_grants)
        self.ops: dict[str, OpSpec] = {}
        for spec in (*CORE_OPS, *(op for s in self.services for op in s.ops())):
            if spec.op in self.ops:
                raise ValueError(f"op {spec.op} is served twice")
            self.ops[spec.op] = spec
        self.connections: set[ServerSession] = set()
        self.per_ip: Counter[str] = Counter()
        self.auth_failures = TokenBuckets(
            self.limits.auth_failures_per_ip / self.limits.auth_failure_window,
            self.limits.auth_failures_per_ip,
        )
        self.udp_replies = TokenBuckets(self.limits.udp_replies_per_sec, self.limits.udp_burst)
        self.linger = self.limits.close_linger
        self.listening = Listening()
        self.shutting_down = False
        self._servers: list[asyncio.Server] = []
        self._udp: list[asyncio.DatagramTransport] = []
        self._started: list[Service] = []
        """Services whose start succeeded: only they are stopped."""
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

    def admit(self, conn: ServerSession) -> ProtocolError | None:
        """Count a new connection in, or say why it is refused (section 2.9)."""
        if self.shutting_down:
            return ServerShuttingDown("the server is stopping")
        if len(self.connections) >= self.limits.max_connections:
            return LimitBusy("the server has too many connections; try later", fatal=True)
        if self.per_ip[conn.peer] >= self.limits.max_connections_per_ip:
            return LimitBusy("too many connections from your address", fatal=True)
        self.connections.add(conn)
        self.per_ip[conn.peer] += 1
        return None

    def forget(self, conn: ServerSession) -> None:
        if conn in self.connections:
            self.connections.discard(conn)
            self.trimmer.departed += 1
            left = self.per_ip[conn.peer] - 1
            if left > 0:
                self.per_ip[conn.peer] = left
            else:
                del self.per_ip[conn.peer]
            if self.shutting_down and not self.connections:
                self._stopped.set()

    def permit(self, spec: OpSpec, grants: frozenset[str], user: str | None) -> None:
        """Raise why a client holding ``grants`` may not run ``spec`` now; the one
        admission check of every transport (streams, messages, UDP)."""
        if spec.grant is not None and spec.grant not in grants:
            if user is None:
                raise AuthRequired(f"{spec.op} needs a user with the '{spec.grant}' grant; log in")
            raise AuthRequired(f"user {user} lacks the '{spec.grant}' grant that {spec.op} needs")
        if self.outbound.spent and spec.service != "core":
            raise LimitBusy("the server is short of memory; try again shortly")

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
        for attempt in range(PORT_ATTEMPTS):
            try:
                await self._listen(ssl_ctx)
                break
            except OSError as exc:
                # port 0: the TCP port the kernel chose may be taken for UDP; choose again
                if cfg.port != 0 or exc.errno != errno.EADDRINUSE or attempt == PORT_ATTEMPTS - 1:
                    raise
        if cfg.unix is not None:
            await self._start_unix(cfg.unix, ssl_ctx)
        self.background.every(min(1.0, self.limits.handshake_timeout / 4), self._sweep, "sweeper")
        self.background.every(USERS_POLL, self._apply_users, "users.json check")
        return self.listening

    async def _listen(self, ssl_ctx: ssl.SSLContext | None) -> None:
        """The stream listeners, then UDP on the same port; all or nothing."""
        cfg = self.config
        kind = "tls" if cfg.tls else "tcp"
        tcp: asyncio.Server | None = None
        socks: list[socket.socket] = []
        if ssl_ctx is None:
            tcp = await self.loop.create_server(
                lambda: StreamAdapter(self, kind),
                cfg.host,
                cfg.port,
                reuse_address=True,
                reuse_port=cfg.workers > 1 or None,
                backlog=4096,
            )
            listeners = [sock.getsockname() for sock in tcp.sockets]
        else:
            socks = await self._bind(cfg.host, cfg.port)
            listeners = [sock.getsockname() for sock in socks]
        udp: list[asyncio.DatagramTransport] = []
        try:
            for addr in listeners if cfg.udp else []:
                transport, _proto = await self.loop.create_datagram_endpoint(
                    lambda: UdpEndpoint(self),
                    local_addr=(addr[0], listeners[0][1]),
                    reuse_port=cfg.workers > 1 or None,
                )
                udp.append(transport)
        except OSError:
            for transport in udp:
                transport.close()
            if tcp is not None:
                tcp.close()
            for sock in socks:
                sock.close()
            raise
        if tcp is not None:
            self._servers.append(tcp)
        if ssl_ctx is not None:
            for sock in socks:
                self.background.spawn(accept_tls(self, sock, kind, ssl_ctx), "tls listener")
        for addr in listeners:
            self.listening.tcp.append((str(addr[0]), int(addr[1])))
        for transport in udp:
            self._udp.append(transport)
            name = transport.get_extra_info("sockname")
            self.listening.udp.append((str(name[0]), int(name[1])))

    async def _bind(self, host: str | None, port: int) -> list[socket.socket]:
        """Listening sockets for every address of ``host`` (one port for all)."""
        infos = await self.loop.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
        socks: list[socket.socket] = []
        seen: set[tuple[int, str]] = set()
        for family, _, _, _, sockaddr in infos:
            if (family, str(sockaddr[0])) in seen:
                continue
            seen.add((family, str(sockaddr[0])))
            chosen = socks[0].getsockname()[1] if socks else port
            sock = socket.create_server(
                (str(sockaddr[0]), chosen),
                family=family,
                backlog=4096,
                reuse_port=self.config.workers > 1,  # the workers share the port
            )
            sock.setblocking(False)
            socks.append(sock)
        return socks

    async def _start_unix(self, path: Path, ssl_ctx: ssl.SSLContext | None) -> None:
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISSOCK(path.lstat().st_mode):
                path.unlink()  # a stale socket from an earlier run
        self.listening.unix = path
        if ssl_ctx is None:
            unix = await self.loop.create_unix_server(
                lambda: StreamAdapter(self, "unix"), str(path), backlog=4096
            )
            self._servers.append(unix)
            return
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(str(path))
        sock.listen(4096)
        sock.setblocking(False)
        self.background.spawn(accept_tls(self, sock, "unix", ssl_ctx), "tls listener")

    def _sweep(self) -> None:
        """Check every connection's timers about once a second; no timer per connection.
        One session whose check fails is logged and the others are still checked."""
        now = self.loop.time()
        for conn in list(self.connections):
            try:
                conn.check_timers(now)
            except Exception:
                log.exception("timer check of %s %s failed", conn.kind, conn.peer)
        self.trimmer.check()

    def _apply_users(self) -> None:
        """Apply a changed users.json to open sessions: a removed user or a changed key
        ends them (fatal ``auth.failed``), changed grants hold from the next request."""
        generation = self.users.generation()
        if generation == self._users_applied:
            return
        self._users_applied = generation
        for conn in list(self.connections):
            if conn.user is None or conn.closed:
                continue
            record = self.users.get(conn.user)
            if record is None:
                why = f"user {conn.user} was removed on the server"
            elif record.key != conn.key:
                why = f"the key of user {conn.user} was changed on the server; log in again"
            else:
                conn.grants = self.anonymous_grants | frozenset(record.grants)
                continue
            log.info("%s %s: %s", conn.kind, conn.peer, why)
            conn.close(AuthFailed(why))

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
        await self.background.close()  # the TLS listeners and the sweeper among them
        for transport in self._udp:
            transport.close()
        for conn in list(self.connections):
            conn.close(ServerShuttingDown("the server is stopping"))
        if self.connections:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopped.wait(), self.limits.shutdown_grace)
        for conn in list(self.connections):
            conn.link.abort()
        for srv in self._servers:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(srv.wait_closed(), 1.0)
        await self.background.close()  # what services started meanwhile
        for service in reversed(self._started):
            try:
                await service.stop()
            except Exception:
                log.exception("stopping service %s failed", service.name)
        if self.listening.unix is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.listening.unix)
