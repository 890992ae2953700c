"""The browser bridge: fan-out to WebSocket members, and what an idle WebSocket costs.

1. Chat fan-out, 64-byte messages, one room of 1,000 members: the same sockhub server
   process with its members on WebSocket, then on TCP (same run, rounds alternating),
   and a minimal python-websockets server whose handler ``broadcast()``s each message it
   receives to every member (no history, no framing of its own: the library's best
   case). Members count marked payloads in the bytes they receive, as in ``bench_chat``;
   a publisher keeps W messages in flight end to end.
   ``broadcast()`` does not guarantee delivery (it skips a connection it cannot write to
   at that moment), so that baseline is counted loss-tolerantly: when its deliveries
   stop short of the target for ``QUIET`` seconds the missing ones are counted as lost,
   the wait is taken out of its elapsed time, and the run goes on. The sockhub cases
   must deliver everything (a shortfall for ``STALL`` seconds is an error).
   Beside each rate, the server process's CPU time per delivery in the same round (from
   /proc): with one message in flight the rate follows how soon each process gets a
   core back on a busy machine, the CPU a delivery costs does not.
2. Server RSS per idle connection: a fresh server process (nothing run on it before)
   holding ``IDLE`` idle WebSockets (upgraded, ``hello`` and one ping answered), beside
   another fresh one holding the same number of idle TCP connections.
"""

from __future__ import annotations

import asyncio
import base64
import gc
import os
import tempfile
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

import uvloop
from websockets.frames import Frame, Opcode

from sockhub.protocol.frames import encode_frame

from ._procs import median, raise_nofile, ratio_median, report_port, rss_bytes, spawn_server
from ._table import print_table
from .bench_chat import BODY, Member, Room, payload, sockhub_join, sockhub_publish

SECONDS = 1.5
ROUNDS = 5
WARMUP = 0.3
MEMBERS = 1000
IDLE = 1000
WINDOWS = (1, 32)
STALL = 20.0
"""Seconds without the awaited deliveries after which a sockhub run is an error."""
QUIET = 0.2
"""Seconds without progress after which the broadcast() baseline's shortfall is lost."""


def masked(data: bytes) -> bytes:
    """One client-to-server WebSocket message (clients mask, RFC 6455 5.3)."""
    return Frame(Opcode.BINARY, data).serialize(mask=True, extensions=[])


def upgrade(port: int) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        f"Sec-WebSocket-Protocol: sockhub.v1\r\n\r\n"
    ).encode()


def serve_web_with(ready: Connection, flags: dict[str, Any]) -> None:
    """Process target: a sockhub server and its web listener; reports the framed port."""
    raise_nofile()
    from sockhub.server import Server, load_config
    from sockhub.services import default_services
    from sockhub.web import WebListener

    async def main() -> None:
        config = load_config(flags, env={})
        server = Server(config, default_services(config))
        listening = await server.start()
        web = WebListener(server)
        web.ping_interval = 3600.0  # the members count bytes and never answer a ping
        await web.start()
        report_port(ready, listening.tcp[0][1])
        await server.serve_forever()

    uvloop.run(main())


def serve_broadcast(ready: Connection) -> None:
    """Process target: python-websockets on uvloop; ``join`` adds a member, anything else
    is ``broadcast()`` to every member."""
    raise_nofile()
    import logging

    from websockets.asyncio.server import ServerConnection, broadcast, serve

    logging.getLogger("websockets").setLevel(logging.CRITICAL)  # members leave abruptly

    members: set[ServerConnection] = set()

    async def handler(ws: ServerConnection) -> None:
        try:
            async for message in ws:
                if message == b"join":
                    members.add(ws)
                    await ws.send(b"joined")
                else:
                    broadcast(members, message)
        finally:
            members.discard(ws)

    async def main() -> None:
        # no pings: the members count bytes and never answer one, and a server that
        # closes them after its ping timeout loses their deliveries (the first round's
        # "lossy baseline" was this)
        async with serve(
            handler, "127.0.0.1", 0, compression=None, max_size=None, ping_interval=None
        ) as server:
            report_port(ready, server.sockets[0].getsockname()[1])
            await asyncio.Future()

    uvloop.run(main())


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of process ``pid`` so far (Linux)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Fanout:
    """One room: ``MEMBERS`` members connected by ``member``, one publisher by ``publisher``."""

    def __init__(self, name: str, lossy: bool, pid: int) -> None:
        self.name = name  # one room per case: the nicks m0, m1... are taken per room
        self.pid = pid
        """The server process, whose CPU time a round's deliveries cost."""
        self.cpu = 0.0
        """Server CPU seconds per delivery in the last round."""
        self.room = Room(MEMBERS)
        self.conns: list[asyncio.Transport] = []
        self.publish: Callable[[int], None] = lambda rid: None
        self.lossy = lossy
        self.lost = 0
        """Deliveries given up for lost (the lossy baseline only)."""
        self.waited = 0.0
        """Seconds spent waiting for those, left out of the rate."""

    async def member(self, port: int, ws: str | None, n: int) -> None:
        """``ws``: None for TCP, "sockhub" for our bridge, "plain" for the broadcast server."""
        loop = asyncio.get_running_loop()
        transport, member = await loop.create_connection(
            lambda: Member(self.room, n % 25 == 0), "127.0.0.1", port
        )
        self.conns.append(transport)
        if ws is None:
            await member.until(b"hello")
            transport.write(sockhub_join(self.name, n))
            await member.until(b"chat.joined", then_count=True)
        elif ws == "sockhub":
            transport.write(upgrade(port))
            await member.until(b"hello")
            transport.write(masked(sockhub_join(self.name, n)))
            await member.until(b"chat.joined", then_count=True)
        else:
            transport.write(upgrade(port))
            await member.until(b"101")
            transport.write(masked(b"join"))
            await member.until(b"joined", then_count=True)

    async def publisher(self, port: int, plain_ws: bool) -> None:
        loop = asyncio.get_running_loop()
        transport, sink = await loop.create_connection(
            lambda: Member(Room(0), False), "127.0.0.1", port
        )
        self.conns.append(transport)
        if plain_ws:
            transport.write(upgrade(port))
            await sink.until(b"101")
            self.publish = lambda rid: transport.write(masked(payload()))
        else:
            await sink.until(b"hello")
            transport.write(sockhub_join(self.name, MEMBERS))
            await sink.until(b"chat.joined")
            self.publish = lambda rid: transport.write(sockhub_publish(self.name, rid))

    async def run(self, window: int, seconds: float) -> float:
        room, sent, rid = self.room, 0, 2
        room.delivered = self.lost = 0
        self.waited = 0.0
        loop = asyncio.get_running_loop()
        cpu = cpu_seconds(self.pid)
        start = loop.time()
        while loop.time() < start + seconds:
            await self.reach((sent - window + 1) * room.members)
            self.publish(rid)
            rid += 1
            sent += 1
        await self.reach(sent * room.members)
        self.cpu = (cpu_seconds(self.pid) - cpu) / max(room.delivered, 1)
        return room.delivered / (loop.time() - start - self.waited)

    async def reach(self, deliveries: int) -> None:
        """Wait for the deliveries (less those already given up for lost)."""
        room = self.room
        while True:
            before = room.delivered
            try:
                await asyncio.wait_for(
                    room.reach(deliveries - self.lost), QUIET if self.lossy else STALL
                )
                return
            except TimeoutError:
                if not self.lossy:
                    raise RuntimeError(
                        f"{self.name}: {room.delivered} of {deliveries} deliveries after {STALL} s"
                    ) from None
                if room.delivered == before:  # no progress at all: the rest is lost
                    self.lost = deliveries - room.delivered
                    self.waited += QUIET
                    return

    def close(self) -> None:
        for transport in self.conns:
            transport.close()


Results = dict[int, dict[str, list[float]]]


async def fanout(
    ports: dict[str, int], pids: dict[str, int]
) -> tuple[Results, Results, dict[int, int]]:
    """Deliveries per second and server CPU seconds per delivery, per window and case;
    and the baseline's lost deliveries."""
    cases = {}
    for name, port in ports.items():
        ws = {"websocket": "sockhub", "tcp": None, "broadcast()": "plain"}[name]
        case = Fanout(name.strip("()"), lossy=ws == "plain", pid=pids[name])
        for n in range(MEMBERS):
            await case.member(port, ws, n)
        await case.publisher(ports["tcp"] if ws == "sockhub" else port, ws == "plain")
        await case.run(1, WARMUP)
        cases[name] = case
    results: Results = {}
    cpu: Results = {}
    lost: dict[int, int] = {}
    for window in WINDOWS:
        results[window] = {name: [] for name in cases}
        cpu[window] = {name: [] for name in cases}
        lost[window] = 0
        for _ in range(ROUNDS):
            for name, case in cases.items():
                results[window][name].append(await case.run(window, SECONDS))
                cpu[window][name].append(case.cpu)
                lost[window] += case.lost
    for case in cases.values():
        case.close()
    return results, cpu, lost


async def idle_rss(pid: int, port: int, ws: bool) -> float:
    """Server RSS growth per idle connection, ``IDLE`` of them held on ``port``."""
    gc.collect()
    before = rss_bytes(pid)
    conns = []
    loop = asyncio.get_running_loop()
    ping = encode_frame({"op": "ping", "id": 1})
    for _ in range(IDLE):
        transport, member = await loop.create_connection(
            lambda: Member(Room(0), False), "127.0.0.1", port
        )
        if ws:
            transport.write(upgrade(port))
        await member.until(b"hello")
        transport.write(masked(ping) if ws else ping)
        await member.until(b"pong")
        conns.append(transport)
    grown = (rss_bytes(pid) - before) / IDLE
    for transport in conns:
        transport.close()
    return grown


def server_flags(data: str, web_port: int) -> dict[str, Any]:
    return {
        "host": "127.0.0.1",
        "port": 0,
        "udp": False,
        "web_port": web_port,
        "data": os.path.join(data, "sockhub"),
        "max_connections_per_ip": 4 * (MEMBERS + IDLE),
        # the publisher is anonymous and floods on purpose: lift its rate limits
        "chat_anon_per_sec": 1e9,
        "chat_anon_burst": 1_000_000_000,
        "chat_anon_per_ip_per_sec": 1e9,
        "chat_anon_per_ip_burst": 1_000_000_000,
    }


def fresh_idle_rss(data: str, ws: bool) -> float:
    """``idle_rss`` on a server process started for it alone."""
    from .bench_chat import free_port

    web_port = free_port()
    with spawn_server(serve_web_with, server_flags(data, web_port)) as (pid, tcp_port):
        return uvloop.run(idle_rss(pid, web_port if ws else tcp_port, ws))


def print_cases(by_window: Results, shown: Callable[[float], str], cost: bool) -> None:
    """Each case's median per window, then websocket against each baseline: for a rate
    websocket over it, for a cost it over websocket (above 1 is better either way)."""
    names = ("tcp", "broadcast()")
    ratios = [f"{n}/ws" if cost else f"ws/{n}" for n in names]
    rows = []
    for window, by_name in by_window.items():
        ws = by_name["websocket"]
        against = [
            ratio_median(by_name[n], ws) if cost else ratio_median(ws, by_name[n]) for n in names
        ]
        rows.append(
            [str(window), shown(median(ws)), *(shown(median(by_name[n])) for n in names)]
            + [f"{r:.2f}x" for r in against]
        )
    print_table(["window", "websocket", *names, *ratios], rows)


def main() -> None:
    raise_nofile()
    from .bench_chat import free_port

    web_port = free_port()
    with tempfile.TemporaryDirectory() as data:
        with (
            spawn_server(serve_web_with, server_flags(data, web_port)) as (pid, tcp_port),
            spawn_server(serve_broadcast) as (plain_pid, plain_port),
        ):
            ports = {"websocket": web_port, "tcp": tcp_port, "broadcast()": plain_port}
            pids = {"websocket": pid, "tcp": pid, "broadcast()": plain_pid}
            results, cpu, lost = uvloop.run(fanout(ports, pids))
        ws_idle = fresh_idle_rss(os.path.join(data, "ws"), ws=True)
        tcp_idle = fresh_idle_rss(os.path.join(data, "tcp"), ws=False)
    print(f"chat fan-out to {MEMBERS:,} members of one room, {BODY}-byte messages;")
    print(f"{ROUNDS} rounds of {SECONDS:g} s per server, alternating; deliveries per second")
    print_cases(results, lambda rate: f"{rate / 1e3:,.0f} k", cost=False)
    print("targets: ws/tcp >= 0.80x, ws/broadcast() >= 2.00x")
    print("server CPU per delivery, same rounds (a ratio above 1: websocket costs less)")
    print_cases(cpu, lambda seconds: f"{seconds * 1e6:.2f} us", cost=True)
    for window, count in lost.items():
        print(f"broadcast() deliveries given up for lost, window {window}: {count:,}")
    print(
        f"server RSS per idle connection ({IDLE:,} held, each kind on a fresh server):"
        f" websocket {ws_idle:,.0f} B, tcp {tcp_idle:,.0f} B,"
        f" websocket - tcp {ws_idle - tcp_idle:,.0f} B (target: websocket <= 4,000 B)"
    )
