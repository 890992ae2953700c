"""``lab serve``: open one listener per course format and keep them until stopped."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from ..client import ConnectError
from ..client.chat_session import RETRY_DELAYS, AsyncChatSession
from ..protocol.errors import ProtocolError
from .backend import Backend, connect_backend
from .bridge import Bridge
from .chat import Room
from .console import Console
from .formats import FORMATS, Format
from .limits import LabLimits
from .peer import Peer
from .tcp import HANDLERS, Lab
from .udp import CoursePort, ReplyBudget

__all__ = ["Listener", "Options", "RunningLab", "start_lab"]

log = logging.getLogger("sockhub.lab")


@dataclass(frozen=True, slots=True)
class Options:
    host: str = "127.0.0.1"
    base_port: int = 9700
    server: str | None = None
    user: str | None = None
    key: bytes | None = None
    lab_exec: bool = False
    room: str = "lab"
    only: tuple[str, ...] = ()
    console: bool = False
    limits: LabLimits = field(default_factory=LabLimits)
    udp_budget: ReplyBudget | None = None
    """Per-source UDP replies (``sockhub lab serve`` gives the server's token buckets)."""
    bridge_retry: tuple[float, ...] = RETRY_DELAYS
    """Seconds between the chat bridge's attempts to reach a restarted sockhub server."""


@dataclass(frozen=True, slots=True)
class Listener:
    format: str
    transport: str
    host: str
    port: int
    section: str

    def as_dict(self) -> dict[str, object]:
        return {
            "format": self.format,
            "transport": self.transport,
            "host": self.host,
            "port": self.port,
            "section": self.section,
        }


@dataclass
class RunningLab:
    lab: Lab
    listeners: list[Listener] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    servers: list[asyncio.Server] = field(default_factory=list)
    datagrams: list[asyncio.DatagramTransport] = field(default_factory=list)

    async def close(self) -> None:
        for server in self.servers:
            server.close()
        for transport in self.datagrams:
            transport.close()
        # asyncio (3.11) does not wait for the connections it handed out: a handler left
        # pending when the loop closes is destroyed half-way, inside its own cleanup
        for task in list(self.lab.connections):
            task.cancel()
        if self.lab.connections:
            await asyncio.wait(list(self.lab.connections), timeout=5)
        for room in self.lab.rooms.values():
            await room.close()
        for server in self.servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 2)
        if self.lab.backend is not None:
            await self.lab.backend.close()


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _why_not(fmt: Format, opts: Options, backend: Backend | None) -> str | None:
    """Why ``fmt`` stays closed, or None when it can open."""
    if opts.only and fmt.name not in opts.only:
        return "not asked for"
    if fmt.needs == "exec":
        if not opts.lab_exec:
            return "command execution is off (give --lab-exec)"
        if not is_loopback(opts.host):
            return "command execution listens on loopback only"
    if fmt.needs and (backend is None or fmt.needs not in backend.grants):
        return f"needs a sockhub server and a user with the {fmt.needs!r} grant"
    return None


async def _bridge(lab: Lab, opts: Options, name: str) -> None:
    room = Room(with_time=name == "chat", limits=opts.limits)
    lab.rooms[name] = room
    if opts.server is None:
        return
    session = AsyncChatSession(
        opts.server, user=opts.user, key=opts.key, timeout=5, retry_delays=opts.bridge_retry
    )
    room_name = opts.room if name == "chat" else f"{opts.room}-plain"
    bridge = Bridge(session, room_name, room.from_sockhub, opts.limits.bridge_backlog)
    try:
        await session.connect()
        nick = await bridge.start()
    except (ConnectError, ProtocolError, OSError) as exc:
        log.warning("chat bridge: no sockhub room %r (%s); %s is local only", room_name, exc, name)
        await bridge.close()
        return
    room.bridge = bridge
    log.info("chat bridge: course chat shares sockhub room %r as %s", room_name, nick)


def _tcp_callback(
    fmt: str, lab: Lab, gate: asyncio.Semaphore
) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
    handler = HANDLERS[fmt]

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = Peer(fmt, reader, writer, lab.limits)
        if gate.locked():
            peer.anomaly(
                "refused: %d connections are already open (connections_per_listener)",
                lab.limits.connections_per_listener,
            )
            await peer.close()
            return
        task = asyncio.current_task()
        assert task is not None
        async with gate:
            lab.connections.add(task)
            peer.info("connected")
            try:
                await handler(lab, peer)
            except (ConnectionError, OSError) as exc:
                peer.anomaly("connection failed: %s", exc)
            finally:
                lab.connections.discard(task)
                await peer.close()

    return on_connect


def _udp_socket(host: str, port: int) -> socket.socket:
    """Our own UDP socket, kept so that empty datagrams can be sent (asyncio drops them)."""
    info = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
    sock = socket.socket(info[0], socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        sock.bind(info[4])
    except OSError:
        sock.close()
        raise
    return sock


def _port(opts: Options, fmt: Format) -> int:
    return 0 if opts.base_port == 0 else opts.base_port + fmt.offset


async def _open(running: RunningLab, opts: Options, fmt: Format) -> Listener:
    port = _port(opts, fmt)
    loop = asyncio.get_running_loop()
    if fmt.transport == "udp":
        raw = _udp_socket(opts.host, port)
        transport, _ = await loop.create_datagram_endpoint(
            lambda: CoursePort(fmt.name, opts.limits, raw, running.lab.console, opts.udp_budget),
            sock=raw,
        )
        running.datagrams.append(transport)
        sock = transport.get_extra_info("socket")
    else:
        gate = asyncio.Semaphore(opts.limits.connections_per_listener)
        server = await asyncio.start_server(
            _tcp_callback(fmt.name, running.lab, gate),
            opts.host,
            port,
            reuse_address=True,
            limit=opts.limits.max_line,
        )
        running.servers.append(server)
        sock = server.sockets[0]
    host, bound = sock.getsockname()[:2]
    return Listener(fmt.name, fmt.transport, str(host), int(bound), fmt.section)


async def start_lab(opts: Options) -> RunningLab:
    """Every listener the options allow, open; raises OSError when a port is taken."""
    backend = None
    if opts.server is not None and (opts.lab_exec or opts.user):
        backend = await connect_backend(
            opts.server, user=opts.user, key=opts.key, limits=opts.limits
        )
    console = Console() if opts.console else None
    running = RunningLab(Lab(backend=backend, console=console, limits=opts.limits))
    try:
        for name in ("chat", "chat-plain"):
            await _bridge(running.lab, opts, name)
        for fmt in FORMATS:
            reason = _why_not(fmt, opts, backend)
            if reason is not None:
                running.skipped[fmt.name] = reason
                continue
            running.listeners.append(await _open(running, opts, fmt))
    except BaseException:
        await running.close()
        raise
    for name, reason in running.skipped.items():
        if reason != "not asked for":
            log.info("%s stays closed: %s", name, reason)
    return running


def family_ok(host: str) -> bool:
    """True when ``host`` can be bound here (a clear usage error beats a traceback)."""
    try:
        socket.getaddrinfo(host, None)
    except socket.gaierror:
        return False
    return True
