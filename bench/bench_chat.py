"""Chat fan-out: sockhub against a private ``redis-server`` pub/sub, one harness for both.

One uvloop process holds every member connection and the publishers; each server runs
in its own process. 64-byte messages; a publisher keeps W messages in flight end to
end (message n goes out once every member has received message n-W), so neither
server is measured filling buffers. Each payload carries its send time; members count
deliveries by the payload's marker (the same bytes on both servers) and a sample of
members records publish-to-receive latency. Figures are deliveries per second and
p50/p99 latency; sockhub stores every message in its SQLite history as it goes.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import os
import re
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import uvloop

from sockhub.protocol.frames import encode_frame

from ._procs import (
    group_process,
    median,
    raise_nofile,
    ratio_median,
    serve_sockhub_with,
    spawn_server,
)
from ._table import print_table

SECONDS = 1.5
"""Measured time per round (after the members joined and a warm-up)."""
ROUNDS = 5
"""Rounds per case and server, alternating between the servers; medians are shown."""
WARMUP = 0.3
STALL = 120.0
"""A round that has not finished after this many seconds is stuck: the bench fails."""
SAMPLE_EVERY = 25
"""One member in this many records latency (the others only count)."""
MARK = b"@@T"
_STAMP = re.compile(rb"@@T(\d{19})")
BODY = 64


def payload() -> bytes:
    return (MARK + b"%019d" % time.monotonic_ns()).ljust(BODY, b".")


@dataclass
class Room:
    """One room's members as the harness sees them: deliveries, latency, the window."""

    members: int
    delivered: int = 0
    latencies: list[float] = field(default_factory=list)
    need: int = 0
    waiter: asyncio.Future[None] | None = None

    def got(self, n: int) -> None:
        self.delivered += n
        if self.waiter is not None and self.delivered >= self.need and not self.waiter.done():
            self.waiter.set_result(None)

    async def reach(self, deliveries: int) -> None:
        while self.delivered < deliveries:
            self.need = deliveries
            self.waiter = asyncio.get_running_loop().create_future()
            await self.waiter


class Member(asyncio.Protocol):
    """Counts marked payloads in whatever arrives; a sampled member also times them.

    Until ``joined`` it only collects the set-up replies (hello, joined, subscribed).
    """

    def __init__(self, room: Room, sample: bool) -> None:
        self.room = room
        self.sample = sample
        self.tail = b""
        self.setup = b""
        self.counting = False
        self.waiter: asyncio.Future[None] | None = None

    def data_received(self, data: bytes) -> None:
        if not self.counting:
            self.setup += data
            if self.waiter is not None and not self.waiter.done():
                self.waiter.set_result(None)
            return
        old = len(self.tail)
        buf = self.tail + data
        self.tail = buf[-(len(MARK) + 19) :]
        if self.sample:
            now = time.monotonic_ns()
            for m in _STAMP.finditer(buf):
                if m.end() > old:  # not already seen whole in the previous read
                    self.room.latencies.append((now - int(m.group(1))) / 1e6)
        count = buf.count(MARK) - buf[:old].count(MARK)
        if count:
            self.room.got(count)

    async def until(self, marker: bytes, *, then_count: bool = False) -> None:
        while marker not in self.setup:
            self.waiter = asyncio.get_running_loop().create_future()
            await self.waiter
        self.setup = b""
        self.counting = then_count


@dataclass
class Server:
    """How to speak to one server: join a member, publish one message."""

    name: str
    join: Callable[[str, int], bytes]
    joined: bytes
    publish: Callable[[str, int], bytes]


def sockhub_join(room: str, n: int) -> bytes:
    return encode_frame({"op": "chat.join", "id": 1, "room": room, "nick": f"m{n}"})


def sockhub_publish(room: str, rid: int) -> bytes:
    return encode_frame({"op": "chat.say", "id": rid, "room": room}, payload())


def redis_join(room: str, n: int) -> bytes:
    return b"*2\r\n$9\r\nSUBSCRIBE\r\n$%d\r\n%s\r\n" % (len(room), room.encode())


def redis_publish(room: str, rid: int) -> bytes:
    body = payload()
    return b"*3\r\n$7\r\nPUBLISH\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (
        len(room),
        room.encode(),
        len(body),
        body,
    )


SOCKHUB = Server("sockhub", sockhub_join, b"chat.joined", sockhub_publish)
REDIS = Server("redis", redis_join, b"subscribe", redis_publish)


class Sink(asyncio.Protocol):
    """A publisher's connection: replies are read and dropped (the window is end to end)."""

    def data_received(self, data: bytes) -> None:
        pass


@dataclass
class Result:
    rate: float
    p50: float
    p99: float
    cpu: float = 0.0
    """The server's CPU time (all threads, user + system) per delivery, in microseconds."""


class Harness:
    """Every member connection of one case on one server, and a publisher per room."""

    def __init__(self, port: int, server: Server, rooms: int, members: int) -> None:
        self.port, self.server = port, server
        self.rooms = [Room(members) for _ in range(rooms)]
        self.conns: list[asyncio.Transport] = []
        self.publishers: list[asyncio.Transport] = []
        self.ids = itertools.count(2)

    async def connect(self) -> Harness:
        loop = asyncio.get_running_loop()
        for r, room in enumerate(self.rooms):
            for n in range(room.members):
                sample = n % SAMPLE_EVERY == 0
                transport, member = await loop.create_connection(
                    functools.partial(Member, room, sample), "127.0.0.1", self.port
                )
                self.conns.append(transport)
                if self.server is SOCKHUB:
                    await member.until(b"hello")
                transport.write(self.server.join(f"r{r}", n))
                await member.until(self.server.joined, then_count=True)
            transport, _ = await loop.create_connection(Sink, "127.0.0.1", self.port)
            if self.server is SOCKHUB:
                transport.write(sockhub_join(f"r{r}", room.members))
            self.conns.append(transport)
            self.publishers.append(transport)
        await self.run(1, WARMUP)
        return self

    async def run(self, window: int, seconds: float) -> Result:
        """Publish for ``seconds`` with ``window`` messages in flight per room."""
        for room in self.rooms:
            room.delivered, room.latencies = 0, []
        start = time.perf_counter()
        await asyncio.gather(
            *(self._publish(r, window, start + seconds) for r in range(len(self.rooms)))
        )
        elapsed = time.perf_counter() - start
        latencies = sorted(x for room in self.rooms for x in room.latencies)
        return Result(
            sum(room.delivered for room in self.rooms) / elapsed,
            statistics.median(latencies),
            latencies[int(len(latencies) * 0.99)],
        )

    async def _publish(self, r: int, window: int, until: float) -> None:
        room, pub, sent = self.rooms[r], self.publishers[r], 0
        # the publisher's replies are not read: a refused say shows as deliveries that
        # never come, so a stall ends the run instead of hanging it
        async with asyncio.timeout(STALL):
            while time.perf_counter() < until:
                await room.reach((sent - window + 1) * room.members)
                pub.write(self.server.publish(f"r{r}", next(self.ids)))
                sent += 1
            await room.reach(sent * room.members)

    def close(self) -> None:
        for transport in self.conns:
            transport.close()


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measured(harness: Harness, pids: int | tuple[int, ...], window: int) -> Result:
    """One round, with the server processes' CPU time (together) per delivery."""
    every = (pids,) if isinstance(pids, int) else pids
    before, start = sum(map(cpu_seconds, every)), time.perf_counter()
    result = await harness.run(window, SECONDS)
    deliveries = result.rate * (time.perf_counter() - start)
    result.cpu = (sum(map(cpu_seconds, every)) - before) / deliveries * 1e6
    return result


async def compare(
    servers: tuple[tuple[int, int], tuple[int, int]], rooms: int, members: int, window: int
) -> tuple[list[Result], list[Result]]:
    """Every round of each server, alternating (pid, port) of sockhub, then Redis."""
    (ours_pid, ours_port), (redis_pid, redis_port) = servers
    ours = await Harness(ours_port, SOCKHUB, rooms, members).connect()
    theirs = await Harness(redis_port, REDIS, rooms, members).connect()
    results: tuple[list[Result], list[Result]] = ([], [])
    for _ in range(ROUNDS):
        results[0].append(await measured(ours, ours_pid, window))
        results[1].append(await measured(theirs, redis_pid, window))
    ours.close()
    theirs.close()
    return results


def row(label: str, ours: list[Result], theirs: list[Result]) -> tuple[str, ...]:
    def med(rs: list[Result], field: str) -> float:
        return median([getattr(r, field) for r in rs])

    return (
        label,
        f"{med(ours, 'rate') / 1e3:,.0f} k",
        f"{med(theirs, 'rate') / 1e3:,.0f} k",
        f"{ratio_median([r.rate for r in ours], [r.rate for r in theirs]):.2f}x",
        f"{med(ours, 'p50'):.1f}/{med(ours, 'p99'):.1f}",
        f"{med(theirs, 'p50'):.1f}/{med(theirs, 'p99'):.1f}",
        f"{ratio_median([r.p99 for r in ours], [r.p99 for r in theirs]):.2f}x",
        f"{med(ours, 'cpu'):.2f} / {med(theirs, 'cpu'):.2f}",
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


REDIS_FLAGS = ("--save", "", "--appendonly", "no", "--maxclients", "10000", "--loglevel", "warning")


@contextlib.contextmanager
def redis_server() -> Iterator[tuple[int, int]]:
    """A private redis-server on a free loopback port, no persistence."""
    exe = shutil.which("redis-server")
    if exe is None:
        raise RuntimeError("redis-server is not installed (make sysdeps)")
    port = free_port()
    argv = [exe, "--port", str(port), "--bind", "127.0.0.1", *REDIS_FLAGS]
    with group_process(argv, stdout=subprocess.DEVNULL) as proc:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port)) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)
        yield proc.pid, port


CASES = [
    ("1,000 members, 1 in flight", 1, 1000, 1),
    ("1,000 members, 32 in flight", 1, 1000, 32),
    ("10 rooms x 100 members, 32 in flight each", 10, 100, 32),
]


UNLIMITED_SENDERS = {
    "chat_anon_per_sec": 1e9,
    "chat_anon_burst": 1_000_000_000,
    "chat_anon_per_ip_per_sec": 1e9,
    "chat_anon_per_ip_burst": 1_000_000_000,
}
"""The publishers are anonymous and flood on purpose: their rate limits lifted (a say
refused with ``limit.rate`` would never be delivered, and the harness would wait)."""


def main() -> None:
    raise_nofile()
    rows = []
    with tempfile.TemporaryDirectory() as data, redis_server() as redis:
        flags = {
            "host": "127.0.0.1",
            "port": 0,
            "udp": False,
            "data": os.path.join(data, "sockhub"),
            "max_connections_per_ip": 4 * max(rooms * members for _, rooms, members, _ in CASES),
            **UNLIMITED_SENDERS,
        }
        with spawn_server(serve_sockhub_with, flags) as ours:
            for label, rooms, members, window in CASES:
                results = uvloop.run(compare((ours, redis), rooms, members, window))
                rows.append(row(label, *results))
    print(f"chat fan-out, {BODY}-byte messages; {ROUNDS} rounds of {SECONDS:g} s per server,")
    print("alternating; medians, and ratios as the median of the per-round ratios")
    head = (
        "case",
        "sockhub/s",
        "redis/s",
        "rate ratio",
        "sockhub p50/p99 ms",
        "redis p50/p99 ms",
        "p99 ratio",
        "server CPU us/delivery",
    )
    print_table(head, rows)
    print("target: rate ratio >= 1.00x at 32 in flight, p99 ratio <= 1.00x")
