"""Scale-out: ``sockhub serve --workers 2 --broker redis://`` against one process.

The chat fan-out harness of ``bench_chat`` (one uvloop process holding every member
connection, W messages in flight end to end, 64-byte messages) drives, in alternating
rounds on the same machine in the same run:

- 2 workers + Redis: ``sockhub serve --workers 2`` on one port, sharing rooms through a
  private redis-server; the kernel spreads the members over the workers, each
  message goes through a Lua script and pub/sub to both;
- 1 worker, memory broker: one ``sockhub serve`` process, SQLite history;
- Redis pub/sub alone: the same harness speaking SUBSCRIBE/PUBLISH to that redis-server.

Server CPU per delivery counts every server process: both workers and redis-server for
the first, the one process for the second, redis-server for the third. Deliveries per
write (write system calls of the sockhub processes, /proc/PID/io) show how many
messages each write to a member carries on average: what batching buys.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import uvloop

from ._procs import group_process, median, raise_nofile, ratio_median
from ._table import print_table
from .bench_chat import (
    REDIS,
    ROUNDS,
    SECONDS,
    SOCKHUB,
    UNLIMITED_SENDERS,
    Harness,
    Result,
    measured,
    redis_server,
)

CASES = [
    ("1,000 members, 32 in flight", 1, 1000, 32),
    ("10 rooms x 100 members, 32 in flight each", 10, 100, 32),
]


@contextlib.contextmanager
def sockhub_serve(data: Path, *args: str) -> Iterator[tuple[tuple[int, ...], int]]:
    """``sockhub serve ARGS`` in a child process: (the pids serving, the port)."""
    limit = str(4 * max(rooms * members for _, rooms, members, _ in CASES))
    argv = [sys.executable, "-m", "sockhub", "serve", "--port", "0", "--no-udp"]
    argv += ["--data", str(data), "--log-level", "warning"]
    argv += ["--limit", f"max_connections_per_ip={limit}"]
    for name, value in UNLIMITED_SENDERS.items():
        argv += ["--limit", f"{name}={value}"]
    argv += args
    with group_process(argv, 30, stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None
        port = next(
            int(line.split(":")[-1]) for line in proc.stdout if line.strip().startswith("tcp ")
        )
        me = proc.pid
        children = Path(f"/proc/{me}/task/{me}/children").read_text().split()
        yield (tuple(int(c) for c in children) if children else (me,)), port


@dataclasses.dataclass
class Round:
    result: Result
    per_write: float
    """Deliveries per write system call of the sockhub processes (0: none measured)."""


def write_calls(pids: tuple[int, ...]) -> int:
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/io") as fh:
            total += sum(int(line.split()[1]) for line in fh if line.startswith("syscw:"))
    return total


async def compare(
    variants: list[tuple[tuple[int, ...], int, bool]],
    redis_pid: int,
    case: tuple[int, int, int],
) -> list[list[Round]]:
    """Every round of each variant ((pids, port, speaks sockhub)), alternating."""
    rooms, members, window = case
    harnesses = [
        await Harness(port, SOCKHUB if ours else REDIS, rooms, members).connect()
        for _, port, ours in variants
    ]
    rounds: list[list[Round]] = [[] for _ in variants]
    for _ in range(ROUNDS):
        for (pids, _, _), harness, found in zip(variants, harnesses, rounds, strict=True):
            writers = tuple(pid for pid in pids if pid != redis_pid)
            before, start = write_calls(writers), time.perf_counter()
            result = await measured(harness, pids, window)
            writes = write_calls(writers) - before
            deliveries = result.rate * (time.perf_counter() - start)
            found.append(Round(result, deliveries / writes if writes else 0.0))
    for harness in harnesses:
        harness.close()
    return rounds


def main() -> None:
    raise_nofile()
    rows = []
    with tempfile.TemporaryDirectory() as tmp, redis_server() as (redis_pid, redis_port):
        url = f"redis://127.0.0.1:{redis_port}"
        workers = sockhub_serve(Path(tmp, "w"), "--workers", "2", "--broker", url)
        with workers as (worker_pids, workers_port), sockhub_serve(Path(tmp, "m")) as one:
            variants = [
                ((*worker_pids, redis_pid), workers_port, True),
                (one[0], one[1], True),
                ((redis_pid,), redis_port, False),
            ]
            for label, rooms, members, window in CASES:
                two, mem, pubsub = uvloop.run(
                    compare(variants, redis_pid, (rooms, members, window))
                )
                rows.append(_row(label, two, mem, pubsub))
    print(f"chat scale-out, {ROUNDS} rounds of {SECONDS:g} s per variant, alternating; medians")
    head = (
        "case",
        "2 workers+redis/s",
        "1 worker memory/s",
        "redis pub/sub/s",
        "2w vs memory",
        "p99 ms 2w/mem/redis",
        "CPU us/delivery 2w+redis / mem / redis",
        "CPU 2w vs mem",
        "deliveries/write 2w / mem",
    )
    print_table(head, rows)
    print("goal: 2 workers >= 1.00x one memory worker in deliveries/s; CPU 2w vs mem <= 1.20x")
    print(f"(machine: {os.cpu_count()} CPUs shared by the harness, the workers and Redis)")


def _row(label: str, *variants: list[Round]) -> tuple[str, ...]:
    two, mem, pubsub = ([r.result for r in rounds] for rounds in variants)

    def med(rs: list[Result], field: str) -> float:
        return median([getattr(r, field) for r in rs])

    per_write = [median([r.per_write for r in rounds]) for rounds in variants[:2]]
    return (
        label,
        f"{med(two, 'rate') / 1e3:,.0f} k",
        f"{med(mem, 'rate') / 1e3:,.0f} k",
        f"{med(pubsub, 'rate') / 1e3:,.0f} k",
        f"{ratio_median([r.rate for r in two], [r.rate for r in mem]):.2f}x",
        f"{med(two, 'p99'):.1f}/{med(mem, 'p99'):.1f}/{med(pubsub, 'p99'):.1f}",
        f"{med(two, 'cpu'):.2f} / {med(mem, 'cpu'):.2f} / {med(pubsub, 'cpu'):.2f}",
        f"{ratio_median([r.cpu for r in two], [r.cpu for r in mem]):.2f}x",
        f"{per_write[0]:.1f} / {per_write[1]:.1f}",
    )
