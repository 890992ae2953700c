"""``ClassicService``: starts and stops the echo, daytime, time and SNTP listeners.

It has no sockhub ops; it only owns sockets, so it lives and dies with the server
process through the Service start/stop hooks.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from ...server.config import CLASSIC_SERVICES, Config
from ...server.service import ServerContext, Service
from .clocks import daytime, rfc868
from .listeners import Answer, Clock, EchoTcp, Guard, OneShotTcp, UdpResponder
from .sntp import sntp_reply

__all__ = ["Bound", "ClassicService"]


@dataclass(frozen=True, slots=True)
class Bound:
    """One classic listener: which service, over which transport, where."""

    service: str
    transport: str
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.transport} {host}:{self.port}"


def _ports(config: Config) -> dict[str, int]:
    return {
        "echo": config.classic_echo_port,
        "daytime": config.classic_daytime_port,
        "time": config.classic_time_port,
        "sntp": config.classic_sntp_port,
    }


class ClassicService(Service):
    """RFC 862 echo, 867 daytime, 868 time (TCP and UDP) and RFC 4330 SNTP (UDP)."""

    name = "classic"

    def __init__(self, clock: Clock = time.time) -> None:
        self.clock = clock
        self.bound: list[Bound] = []
        self._servers: list[asyncio.Server] = []
        self._udp: list[asyncio.DatagramTransport] = []
        self._guard: Guard | None = None

    def port(self, service: str, transport: str = "tcp") -> int:
        """Where ``service`` ended up listening (the port the OS chose when asked for 0)."""
        for bound in self.bound:
            if bound.service == service and bound.transport == transport:
                return bound.port
        raise KeyError(f"classic {service} is not listening on {transport}")

    def describe(self) -> list[str]:
        """Banner lines: one per service, with the standard tool that talks to it."""
        lines = []
        for service in CLASSIC_SERVICES:
            where = ", ".join(str(b) for b in self.bound if b.service == service)
            if where:
                lines.append(f"  classic {service:<8}{where}")
        return lines

    async def start(self, ctx: ServerContext) -> None:
        config = ctx.config
        loop = asyncio.get_running_loop()
        guard = self._guard = Guard(ctx.limits, loop)
        clock = self.clock
        wanted = [s for s in CLASSIC_SERVICES if s in config.classic_services]
        tcp: dict[str, Callable[[], asyncio.Protocol]] = {
            "echo": lambda: EchoTcp(guard),
            "daytime": lambda: OneShotTcp(guard, clock, daytime),
            "time": lambda: OneShotTcp(guard, clock, rfc868),
        }
        udp: dict[str, Answer] = {
            "echo": lambda data, now: data,
            "daytime": lambda data, now: daytime(now),
            "time": lambda data, now: rfc868(now),
            "sntp": lambda data, now: sntp_reply(data, now, clock()),
        }
        ports = _ports(config)
        for service in wanted:
            port = ports[service]
            try:
                hosts, port = await self._start_tcp(service, config.host, port, tcp.get(service))
                for host in hosts:
                    await self._start_udp(service, host, port, udp[service], loop, guard)
            except OSError as exc:
                raise OSError(
                    exc.errno, f"classic {service} on port {port}: {exc.strerror or exc}"
                ) from exc

    async def _start_tcp(
        self, service: str, host: str, port: int, factory: Callable[[], asyncio.Protocol] | None
    ) -> tuple[list[str], int]:
        """Listen on TCP when the service has a TCP side; the hosts and port to use for UDP."""
        if factory is None:
            return [host], port
        loop = asyncio.get_running_loop()
        server = await loop.create_server(factory, host, port, reuse_address=True, backlog=256)
        self._servers.append(server)
        hosts = []
        for sock in server.sockets:
            addr = sock.getsockname()
            hosts.append(str(addr[0]))
            port = int(addr[1])
            self.bound.append(Bound(service, "tcp", str(addr[0]), port))
        return hosts, port

    async def _start_udp(
        self,
        service: str,
        host: str,
        port: int,
        answer: Answer,
        loop: asyncio.AbstractEventLoop,
        guard: Guard,
    ) -> None:
        transport, _ = await loop.create_datagram_endpoint(
            lambda: UdpResponder(guard, self.clock, answer, any_port=service == "sntp"),
            local_addr=(host, port),
        )
        self._udp.append(transport)
        addr = transport.get_extra_info("sockname")
        guard.own_ports.add(int(addr[1]))
        self.bound.append(Bound(service, "udp", str(addr[0]), int(addr[1])))

    async def stop(self) -> None:
        for server in self._servers:
            server.close()
        for transport in self._udp:
            transport.close()
        if self._guard is not None:
            self._guard.close_all()
        for server in self._servers:
            await server.wait_closed()
        self._servers.clear()
        self._udp.clear()
