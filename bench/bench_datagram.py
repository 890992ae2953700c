"""Datagram benchmark: classic UDP echo and SNTP, and talk messages, beside raw UDP echo.

``python -m bench datagram``. Each server runs in its own process (``spawn_server``);
the client drives it from this process on uvloop, keeping 1 or 32 requests in flight
(the window refilled as replies arrive) for ``SECONDS`` after a short warm-up. The
baseline, measured in the same run and interleaved with the others, is a raw uvloop
``DatagramProtocol`` that sends every datagram straight back: what one Python UDP
round trip costs with nothing on top. A talk "round trip" is a whole delivery: the
signed message out, the peer's dedup and queue, the ack back, the future settled.
"""

from __future__ import annotations

import asyncio
import functools
import tempfile
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any, cast

import uvloop

from sockhub.server.background import Background
from sockhub.server.budget import Budget
from sockhub.server.config import load_config
from sockhub.server.service import ServerContext
from sockhub.server.users import UserStore
from sockhub.services.classic import ClassicService
from sockhub.talk import Delivered, TalkPeer

from ._procs import report_port, spawn_server, timed_rounds

__all__ = ["main"]

ROUNDS = 3
SECONDS = 1.5
WARMUP = 0.3
WINDOWS = (1, 32)
BODY = bytes(range(64))
NTP_REQUEST = bytes([0x23]) + bytes(39) + b"cookie!!"
KEY = b"k" * 32


# servers (each in its own process) -------------------------------------------------------


class _Echo(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: Any = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.transport.sendto(data, addr)


async def _raw_echo(ready: Connection) -> None:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(_Echo, local_addr=("127.0.0.1", 0))
    report_port(ready, transport.get_extra_info("sockname")[1])
    await asyncio.Event().wait()


def serve_raw_echo(ready: Connection) -> None:
    uvloop.run(_raw_echo(ready))


async def _classic(ready: Connection, service: str) -> None:
    with tempfile.TemporaryDirectory() as data:
        flags = {
            "host": "127.0.0.1",
            "data": data,
            "classic": True,
            "classic_services": service,
            f"classic_{service}_port": 0,
            "udp_replies_per_sec": 1e9,  # the per-source budget is not what is measured
            "udp_burst": 1_000_000_000,
        }
        config = load_config(flags, env={})
        classic = ClassicService()
        spools = Budget("spools", config.limits.memory_spools)
        await classic.start(ServerContext(config, UserStore(config.data), Background(), spools))
        report_port(ready, classic.port(service, "udp"))
        await asyncio.Event().wait()


def serve_classic(ready: Connection, service: str) -> None:
    uvloop.run(_classic(ready, service))


async def _talk_peer(ready: Connection) -> None:
    bob = await TalkPeer.open("127.0.0.1:0", "bob")
    report_port(ready, bob.address[1])
    while True:
        await bob.next_message()


def serve_talk(ready: Connection) -> None:
    uvloop.run(_talk_peer(ready))


# clients ---------------------------------------------------------------------------------


class _Driver(asyncio.DatagramProtocol):
    """Keeps ``window`` datagrams in flight; counts replies after the warm-up."""

    def __init__(self, payload: bytes, window: int) -> None:
        self.payload = payload
        self.window = window
        self.count = 0
        self.counting = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)
        for _ in range(self.window):
            self.transport.sendto(self.payload)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if self.counting:
            self.count += 1
        self.transport.sendto(self.payload)


async def _measure(count: Callable[[], int], start: Callable[[], None]) -> float:
    await asyncio.sleep(WARMUP)
    start()
    began = time.perf_counter()
    await asyncio.sleep(SECONDS)
    return count() / (time.perf_counter() - began)


async def _udp_rate(port: int, payload: bytes, window: int) -> float:
    loop = asyncio.get_running_loop()
    transport, driver = await loop.create_datagram_endpoint(
        lambda: _Driver(payload, window), remote_addr=("127.0.0.1", port)
    )
    try:
        return await _measure(lambda: driver.count, lambda: setattr(driver, "counting", True))
    finally:
        transport.close()


async def _talk_rate(port: int, window: int) -> float:
    alice = await TalkPeer.open("127.0.0.1:0", "alice")
    addr = ("127.0.0.1", port)
    state = {"count": 0, "counting": False}
    text = BODY.hex()[:64]

    async def sender() -> None:
        while True:
            _mid, fut = alice.send(addr, text, KEY)
            if isinstance(await fut, Delivered) and state["counting"]:
                state["count"] += 1

    tasks = [asyncio.ensure_future(sender()) for _ in range(window)]
    try:
        return await _measure(lambda: state["count"], lambda: state.update(counting=True))
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        alice.close()


def udp_rate(port: int, payload: bytes, window: int) -> float:
    return uvloop.run(_udp_rate(port, payload, window))


def talk_rate(port: int, window: int) -> float:
    return uvloop.run(_talk_rate(port, window))


def main() -> None:
    with (
        spawn_server(serve_raw_echo) as (_p1, raw),
        spawn_server(serve_classic, "echo") as (_p2, echo),
        spawn_server(serve_classic, "sntp") as (_p3, sntp),
        spawn_server(serve_talk) as (_p4, talk),
    ):
        rows: dict[str, dict[int, float]] = {}
        for window in WINDOWS:
            results = timed_rounds(
                {
                    "raw uvloop UDP echo (baseline)": functools.partial(
                        udp_rate, raw, BODY, window
                    ),
                    "classic UDP echo (RFC 862)": functools.partial(udp_rate, echo, BODY, window),
                    "classic SNTP (RFC 4330)": functools.partial(
                        udp_rate, sntp, NTP_REQUEST, window
                    ),
                    "talk message + ack, signed": functools.partial(talk_rate, talk, window),
                },
                ROUNDS,
            )
            for name, rate in results.items():
                rows.setdefault(name, {})[window] = rate
    base = rows["raw uvloop UDP echo (baseline)"]
    print(f"round trips/s, 64-byte payloads, median of {ROUNDS} interleaved rounds")
    print("| what | " + " | ".join(f"{w} in flight" for w in WINDOWS) + " |")
    print("|---|" + "---|" * len(WINDOWS))
    for name, by_window in rows.items():
        cells = [f"{by_window[w]:,.0f} ({by_window[w] / base[w]:.2f}x)" for w in WINDOWS]
        print(f"| {name} | " + " | ".join(cells) + " |")
