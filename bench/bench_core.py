"""Core benchmark: echo rate, RSS per idle connection, header codecs — each beside a baseline.

``python -m bench core``. Every figure is measured in this run beside its baseline and
printed as a ratio with the target it should meet:

1. echo, 64-byte bodies, one connection, server and client in separate processes:
   ping-pong (1 in flight) and pipelined (100 in flight, the window refilled as replies
   arrive). sockhub (``Server`` with the default services, uvloop) driven by
   ``AsyncClient.request`` futures, beside a raw uvloop ``asyncio.Protocol`` length-prefix
   echo and pyzmq REQ/REP and DEALER/ROUTER. Rounds are interleaved; rates are medians,
   ratios the median of per-round ratios; the CPU both processes spend per message is
   shown too (docs/performance.md says what bounds each figure).
2. RSS per idle connection: 10,000 connections held from another process, server RSS
   delta divided by the count, sockhub beside the raw Protocol server.
3. header codecs: decode + encode of a typical request header per second.
"""

from __future__ import annotations

import collections
import json
import os
import tempfile
import time
from collections.abc import Callable
from typing import Any

import msgspec
import orjson
import uvloop

from sockhub.client.aio import AsyncClient
from sockhub.protocol.frames import encode_header, parse_header

from ._baselines import (
    raw_echo_rate,
    serve_raw_echo,
    serve_zmq,
    zmq_dealer_rate,
    zmq_req_rate,
)
from ._idle import hold_idle
from ._procs import (
    SPAWN,
    Span,
    cpu_seconds,
    interleaved,
    median,
    raise_nofile,
    ratio_median,
    rss_bytes,
    serve_sockhub_with,
    spawn_server,
    timed_rounds,
)
from ._table import print_table

__all__ = ["main"]

BODY = bytes(range(64))
WINDOW = 100
ROUNDS = 5
SECONDS = 1.5
WARMUP = 0.2
IDLE_CONNECTIONS = 10_000
CODEC_ROUNDS = 5
CODEC_LOOPS = 50_000
HEADER = {"op": "chat.say", "id": 48213, "room": "lobby", "size": 64}

TARGET_PIPELINED_ZMQ = 2.0
TARGET_PIPELINED_RAW = 0.5
TARGET_PINGPONG_ZMQ = 1.3
TARGET_IDLE_KB = 4.0


# the sockhub side ------------------------------------------------------------------------


def server_flags(data: str) -> dict[str, Any]:
    """sockhub's defaults on a free port, but for the per-address connection cap, raised
    so that one loopback address can hold the idle test's 10,000 connections."""
    return {
        "host": "127.0.0.1",
        "port": 0,
        "udp": False,
        "data": data,
        "max_connections": 2 * IDLE_CONNECTIONS,
        "max_connections_per_ip": 2 * IDLE_CONNECTIONS,
    }


def sockhub_rate(port: int, window: int, seconds: float, warmup: float = WARMUP) -> float:
    """One round: ``window`` echo requests in flight through ``AsyncClient.request``."""

    async def run() -> float:
        client = await AsyncClient.connect(f"127.0.0.1:{port}", keepalive=False)
        inflight = collections.deque(client.request("echo", BODY) for _ in range(window))
        replies = 0
        span = Span(warmup, seconds)
        while True:
            await inflight.popleft()
            replies += 1
            if replies & 63 == 0 and span.over(replies):
                break
            inflight.append(client.request("echo", BODY))
        for future in inflight:
            await future
        await client.close()
        return span.rate

    return uvloop.run(run())


# report helpers --------------------------------------------------------------------------


def _verdict(ratio: float, target: float, higher_is_better: bool = True) -> str:
    met = ratio >= target if higher_is_better else ratio <= target
    return "met" if met else "MISSED"


# 1. echo ---------------------------------------------------------------------------------


def _metered(
    log: list[float], server_pid: int, measure: Callable[[], float]
) -> Callable[[], float]:
    """``measure`` that also logs the CPU both processes spent per message of its round.

    A round's messages include its warm-up, counted at the measured rate.
    """

    def run() -> float:
        before = cpu_seconds(os.getpid()) + cpu_seconds(server_pid)
        rate = measure()
        spent = cpu_seconds(os.getpid()) + cpu_seconds(server_pid) - before
        log.append(spent / (rate * (SECONDS + WARMUP)))
        return rate

    return run


def bench_echo() -> None:
    with (
        tempfile.TemporaryDirectory(prefix="sockhub-bench-") as data,
        spawn_server(serve_sockhub_with, server_flags(data)) as (ours_pid, ours),
        spawn_server(serve_raw_echo) as (raw_pid, raw),
        spawn_server(serve_raw_echo, True) as (batched_pid, batched),
        spawn_server(serve_zmq, "rep") as (rep_pid, rep),
        spawn_server(serve_zmq, "router") as (router_pid, router),
    ):
        cpu: dict[str, list[float]] = collections.defaultdict(list)
        variants = {
            "ours_pp": _metered(cpu["ours_pp"], ours_pid, lambda: sockhub_rate(ours, 1, SECONDS)),
            "zmq_pp": _metered(cpu["zmq_pp"], rep_pid, lambda: zmq_req_rate(rep, BODY, SECONDS)),
            "raw_pp": _metered(
                cpu["raw_pp"], raw_pid, lambda: raw_echo_rate(raw, BODY, 1, SECONDS)
            ),
            "ours_pl": _metered(
                cpu["ours_pl"], ours_pid, lambda: sockhub_rate(ours, WINDOW, SECONDS)
            ),
            "zmq_pl": _metered(
                cpu["zmq_pl"], router_pid, lambda: zmq_dealer_rate(router, BODY, WINDOW, SECONDS)
            ),
            "raw_pl": _metered(
                cpu["raw_pl"], raw_pid, lambda: raw_echo_rate(raw, BODY, WINDOW, SECONDS)
            ),
            "batched_pl": _metered(
                cpu["batched_pl"],
                batched_pid,
                lambda: raw_echo_rate(batched, BODY, WINDOW, SECONDS, batch=True),
            ),
        }
        rounds = interleaved(variants, ROUNDS)
    r = {name: median(values) for name, values in rounds.items()}
    us = {name: median(values) * 1e6 for name, values in cpu.items()}
    print(
        f"echo, {len(BODY)}-byte bodies, one connection, server in its own process; "
        f"messages/s, median of {ROUNDS} interleaved rounds of {SECONDS:g} s "
        f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)"
    )
    print_table(
        ["", "ping-pong (1 in flight)", f"pipelined ({WINDOW} in flight)"],
        [
            ["sockhub Server <- AsyncClient", f"{r['ours_pp']:,.0f}", f"{r['ours_pl']:,.0f}"],
            ["raw uvloop Protocol echo", f"{r['raw_pp']:,.0f}", f"{r['raw_pl']:,.0f}"],
            ["  the same, one write per read", "", f"{r['batched_pl']:,.0f}"],
            ["pyzmq REQ/REP | DEALER/ROUTER", f"{r['zmq_pp']:,.0f}", f"{r['zmq_pl']:,.0f}"],
        ],
    )
    print(
        "\nCPU per message, client + server process (user + system, us): steadier than the "
        "rates\nwhen the machine is shared, and what bounds the pipelined rate"
    )
    print_table(
        ["", "ping-pong", "pipelined"],
        [
            ["sockhub", f"{us['ours_pp']:.1f}", f"{us['ours_pl']:.1f}"],
            ["raw uvloop Protocol echo", f"{us['raw_pp']:.1f}", f"{us['raw_pl']:.1f}"],
            ["  the same, one write per read", "", f"{us['batched_pl']:.1f}"],
            ["pyzmq", f"{us['zmq_pp']:.1f}", f"{us['zmq_pl']:.1f}"],
        ],
    )
    checks = [
        ("ping-pong vs pyzmq REQ/REP", "ours_pp", "zmq_pp", TARGET_PINGPONG_ZMQ),
        ("ping-pong vs raw Protocol", "ours_pp", "raw_pp", None),
        ("pipelined vs pyzmq DEALER/ROUTER", "ours_pl", "zmq_pl", TARGET_PIPELINED_ZMQ),
        ("pipelined vs raw Protocol", "ours_pl", "raw_pl", TARGET_PIPELINED_RAW),
        ("pipelined vs raw, one write per read", "ours_pl", "batched_pl", None),
    ]
    print()
    rows = []
    for name, ours_key, base_key, target in checks:
        ratio = ratio_median(rounds[ours_key], rounds[base_key])
        spread = [a / b for a, b in zip(rounds[ours_key], rounds[base_key], strict=True)]
        rows.append(
            [name, f"{ratio:.2f}x", f"{min(spread):.2f}-{max(spread):.2f}"]
            + ([f">= {target:g}x", _verdict(ratio, target)] if target else ["", ""])
        )
    print_table(["sockhub ratio (median of per-round ratios)", "x", "rounds", "target", ""], rows)


# 2. idle connections ---------------------------------------------------------------------


def _rss_per_connection(server: Callable[..., None], sockhub: bool, *args: Any) -> float:
    """Server RSS growth per idle connection, in bytes."""
    with spawn_server(server, *args) as (pid, port):
        before = rss_bytes(pid)
        ours, theirs = SPAWN.Pipe()
        holder = SPAWN.Process(
            target=hold_idle, args=(theirs, port, IDLE_CONNECTIONS, sockhub), daemon=True
        )
        holder.start()
        theirs.close()
        try:
            held = ours.recv()
            if not isinstance(held, int):
                raise RuntimeError(f"idle connections to {server.__name__}: {held}")
            after = rss_bytes(pid)
            ours.send("close")
        finally:
            ours.close()
            holder.join(30)
            if holder.is_alive():
                holder.kill()
                holder.join()
    return (after - before) / held


def bench_idle() -> None:
    raise_nofile()
    with tempfile.TemporaryDirectory(prefix="sockhub-bench-") as data:
        ours = _rss_per_connection(serve_sockhub_with, True, server_flags(data))
    raw = _rss_per_connection(serve_raw_echo, False)
    print(f"RSS per idle connection, {IDLE_CONNECTIONS:,} held from another process")
    print_table(
        ["server", "KB", "x raw", "target", ""],
        [
            [
                "sockhub Server",
                f"{ours / 1024:.2f}",
                f"{ours / raw:.2f}x",
                f"<= {TARGET_IDLE_KB:g} KB",
                _verdict(ours / 1024, TARGET_IDLE_KB, higher_is_better=False),
            ],
            ["raw uvloop Protocol", f"{raw / 1024:.2f}", "1.00x", "", ""],
        ],
    )


# 3. header codecs ------------------------------------------------------------------------


def _codec_rate(
    decode: Callable[[bytes], Any], encode: Callable[[Any], object]
) -> Callable[[], float]:
    raw = json.dumps(HEADER, separators=(",", ":")).encode()

    def measure() -> float:
        start = time.perf_counter()
        for _ in range(CODEC_LOOPS):
            encode(decode(raw))
        return CODEC_LOOPS / (time.perf_counter() - start)

    return measure


def bench_codecs() -> None:
    stdlib_encoder = json.JSONEncoder(separators=(",", ":"))
    variants = {
        "msgspec": _codec_rate(msgspec.json.Decoder(dict).decode, msgspec.json.Encoder().encode),
        "orjson": _codec_rate(orjson.loads, orjson.dumps),
        "json (stdlib)": _codec_rate(json.loads, lambda h: stdlib_encoder.encode(h).encode()),
        "sockhub frames": _codec_rate(parse_header, encode_header),
    }
    r = timed_rounds(variants, CODEC_ROUNDS, pause=0)
    base = r["json (stdlib)"]
    print(
        f"header decode + encode, {json.dumps(HEADER)}; per second, median of {CODEC_ROUNDS} rounds"
    )
    notes = {
        "msgspec": "the codec protocol/frames.py uses",
        "sockhub frames": "parse_header + encode_header (codec + checks + prefix)",
    }
    print_table(
        ["codec", "per s", "x json", ""],
        [
            [name, f"{rate:,.0f}", f"{rate / base:.2f}x", notes.get(name, "")]
            for name, rate in r.items()
        ],
    )


def main() -> None:
    for section in (bench_echo, bench_idle, bench_codecs):
        print(flush=True)
        start = time.perf_counter()
        section()
        print(f"({time.perf_counter() - start:.0f} s)", flush=True)
