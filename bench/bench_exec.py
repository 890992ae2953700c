"""Exec benchmark: spawn rate and output throughput through sockhub, beside local baselines.

``python -m bench exec``. The sockhub server (uvloop, exec on) runs in its own process;
the client is ``AsyncClient`` on uvloop in this one. Measured in this run:

1. runs/s of ``true`` (output captured, exit awaited), 1 and 8 in flight on one
   connection, beside local ``asyncio.create_subprocess_exec`` on the default loop (the
   target: sockhub >= 0.7x of it) and, for reference, the same under uvloop and sockhub
   without its bubblewrap sandbox (what the sandbox costs).
2. GB/s of ``head -c 1G /dev/zero`` through exec, beside the same command read through
   a local pipe with ``readinto`` into a reused buffer.

Rounds are interleaved and bounded in count; the whole run takes well under a minute.
"""

from __future__ import annotations

import asyncio
import functools
import io
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import uvloop

from sockhub.client.aio import AsyncClient
from sockhub.server.users import UserStore

from ._procs import serve_sockhub_with, spawn_server, timed_rounds

__all__ = ["main"]

RUNS = 400
ROUNDS = 5
BULK = 1 << 30
BULK_ROUNDS = 3
TARGET_SPAWN = 0.7
IN_FLIGHT = (1, 8)


def _server_flags(data: str) -> dict[str, object]:
    """Exec on; 8 runs may share one connection; 1 GiB of output is under the limit."""
    return {
        "host": "127.0.0.1",
        "port": 0,
        "udp": False,
        "data": data,
        "exec": True,
        "exec_per_connection": max(IN_FLIGHT),
        "exec_output_max": 2 * BULK,
    }


async def _in_flight(one: Callable[[], Awaitable[object]], count: int, window: int) -> float:
    """Runs/s of ``count`` calls of ``one`` with ``window`` of them running at a time."""
    left = count

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            await one()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(window)))
    return count / (time.perf_counter() - start)


async def _local_true() -> None:
    proc = await asyncio.create_subprocess_exec(
        "true", stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    await proc.communicate()


def local_rate(window: int, use_uvloop: bool) -> float:
    run = uvloop.run if use_uvloop else asyncio.run
    return run(_in_flight(_local_true, RUNS, window))


def sockhub_rate(port: int, key: bytes, window: int) -> float:
    async def measure() -> float:
        async with await AsyncClient.connect(
            f"127.0.0.1:{port}", user="bench", key=key, keepalive=False
        ) as client:
            await client.run(["true"], check=True)  # warm up
            return await _in_flight(lambda: client.run(["true"], check=True), RUNS, window)

    return uvloop.run(measure())


def local_pipe_gbps() -> float:
    buf = bytearray(1 << 20)
    start = time.perf_counter()
    proc = subprocess.Popen(["head", "-c", str(BULK), "/dev/zero"], stdout=subprocess.PIPE)
    assert isinstance(proc.stdout, io.BufferedReader)
    got = 0
    while n := proc.stdout.readinto(buf):
        got += n
    proc.wait()
    assert got == BULK
    return got / (time.perf_counter() - start) / 1e9


def sockhub_gbps(port: int, key: bytes) -> float:
    async def measure() -> float:
        async with await AsyncClient.connect(
            f"127.0.0.1:{port}", user="bench", key=key, keepalive=False
        ) as client:
            start = time.perf_counter()
            proc = client.open_process(["head", "-c", str(BULK), "/dev/zero"])
            got = 0
            async for out in proc:
                got += len(out.data)
            assert got == BULK and proc.result is not None and proc.result.ok
            return got / (time.perf_counter() - start) / 1e9

    return uvloop.run(measure())


def _line(name: str, value: str, ratio: str = "", target: str = "") -> None:
    print(f"  {name:<52} {value:>10} {ratio:>8} {target}")


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="sockhub-bench-") as data:
        key = UserStore(Path(data)).add("bench", ("exec",))
        bare_flags = {**_server_flags(data), "exec_unsandboxed": True}
        with (
            spawn_server(serve_sockhub_with, _server_flags(data)) as (_, port),
            spawn_server(serve_sockhub_with, bare_flags) as (_, bare),
        ):
            spawn = timed_rounds(
                {
                    **{
                        f"ours{w}": functools.partial(sockhub_rate, port, key, w) for w in IN_FLIGHT
                    },
                    **{
                        f"bare{w}": functools.partial(sockhub_rate, bare, key, w) for w in IN_FLIGHT
                    },
                    **{f"local{w}": functools.partial(local_rate, w, False) for w in IN_FLIGHT},
                    **{f"uv{w}": functools.partial(local_rate, w, True) for w in IN_FLIGHT},
                },
                ROUNDS,
            )
            bulk = timed_rounds(
                {"ours": lambda: sockhub_gbps(port, key), "pipe": local_pipe_gbps}, BULK_ROUNDS
            )
    print(
        f"exec: runs/s of `true`, output captured, exit awaited ({RUNS} runs a round, "
        f"median of {ROUNDS} interleaved rounds)"
    )
    for w in IN_FLIGHT:
        ratio = spawn[f"ours{w}"] / spawn[f"local{w}"]
        verdict = "met" if ratio >= TARGET_SPAWN else "MISSED"
        print(f" {w} in flight:")
        _line(
            "sockhub exec.run <- AsyncClient (server on uvloop)",
            f"{spawn[f'ours{w}']:,.0f}",
            f"{ratio:.2f}x",
            f"target >= {TARGET_SPAWN:g}x: {verdict}",
        )
        _line(
            "  the same with --exec-unsandboxed (no bwrap)",
            f"{spawn[f'bare{w}']:,.0f}",
            f"{spawn[f'bare{w}'] / spawn[f'local{w}']:.2f}x",
        )
        _line(
            "local asyncio.create_subprocess_exec, default loop",
            f"{spawn[f'local{w}']:,.0f}",
            "1.00x",
        )
        _line(
            "  the same under uvloop (for reference)",
            f"{spawn[f'uv{w}']:,.0f}",
            f"{spawn[f'uv{w}'] / spawn[f'local{w}']:.2f}x",
        )
    print(f"exec: throughput of `head -c {BULK >> 30}G /dev/zero` (median of {BULK_ROUNDS})")
    _line(
        "through sockhub exec -> AsyncClient",
        f"{bulk['ours']:.2f} GB/s",
        f"{bulk['ours'] / bulk['pipe']:.2f}x",
    )
    _line("local pipe, readinto a reused 1 MiB buffer", f"{bulk['pipe']:.2f} GB/s", "1.00x")
