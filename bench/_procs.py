"""Process plumbing shared by benchmarks: servers in their own process, RSS, file limits.

A loopback benchmark whose server shares the client's process measures one core doing
both jobs; each server here runs in a spawned process so client and server get a core
each, as they would on two machines.

Every server process starts a session (process group) of its own, and the bench ends the
whole group: a server's own children (``sockhub serve --workers``) go with it, whether
the bench finishes, fails or is stopped (``end_on_signals``: SIGTERM, as ``timeout``
sends, and SIGINT unwind like an exception).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import resource
import signal
import statistics
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from multiprocessing.connection import Connection
from typing import Any

__all__ = [
    "SPAWN",
    "Span",
    "cpu_seconds",
    "end_on_signals",
    "group_process",
    "interleaved",
    "median",
    "raise_nofile",
    "ratio_median",
    "report_port",
    "rss_bytes",
    "serve_sockhub_with",
    "spawn_server",
    "timed_rounds",
]

SPAWN = multiprocessing.get_context("spawn")


def raise_nofile() -> int:
    """Raise the soft open-files limit to the hard one; the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def rss_bytes(pid: int) -> int:
    """Resident set size of a live process, from /proc (no psutil needed)."""
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a live process (all its threads) has used so far."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def median(values: list[float]) -> float:
    return statistics.median(values)


def end_on_signals() -> None:
    """SIGTERM (and SIGINT, as ever) raise in the main thread instead of ending the
    process on the spot, so every ``finally`` runs and ends its server group."""

    def stop(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, signal.default_int_handler)


def _end_group(pgid: int, wait: Callable[[float], object], grace: float) -> None:
    """SIGTERM the process group, let its leader ``wait`` up to ``grace`` s, then
    SIGKILL whatever is left of the group."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    wait(grace)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


@contextlib.contextmanager
def group_process(
    argv: Sequence[str], grace: float = 10.0, **popen: Any
) -> Iterator[subprocess.Popen[Any]]:
    """``argv`` in a session of its own; on the way out its whole process group ends."""
    proc = subprocess.Popen(argv, start_new_session=True, **popen)

    def wait(timeout: float) -> None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout)

    try:
        yield proc
    finally:
        _end_group(proc.pid, wait, grace)
        proc.wait()


def _own_group(target: Callable[..., None], *args: Any) -> None:
    """Process target wrapper: a session of its own first, then ``target``."""
    os.setsid()
    target(*args)


@contextlib.contextmanager
def spawn_server(
    target: Callable[..., None], *args: Any, timeout: float = 30.0
) -> Iterator[tuple[int, int]]:
    """Run ``target(ready, *args)`` in a fresh process group; yield (pid, port) it reported.

    ``target`` sends its listening port through ``ready`` and serves until terminated.
    """
    ours, theirs = SPAWN.Pipe()
    proc = SPAWN.Process(target=_own_group, args=(target, theirs, *args), daemon=True)
    proc.start()
    theirs.close()
    assert proc.pid is not None
    try:
        if not ours.poll(timeout):
            raise RuntimeError(f"{target.__name__} did not start within {timeout:g} s")
        port = int(ours.recv())
        yield proc.pid, port
    finally:
        _end_group(proc.pid, proc.join, 5)
        if proc.is_alive():  # ended before its setsid: not in a group of its own yet
            proc.kill()
        proc.join()
        ours.close()


def report_port(ready: Connection, port: int) -> None:
    """What a server target calls once it listens."""
    ready.send(port)
    ready.close()


def serve_sockhub_with(ready: Connection, flags: dict[str, Any]) -> None:
    """Process target: a sockhub ``Server`` on uvloop with the default services for ``flags``."""
    import uvloop

    raise_nofile()

    from sockhub.server import Server, load_config
    from sockhub.services import default_services

    async def main() -> None:
        config = load_config(flags, env={})
        server = Server(config, default_services(config))
        listening = await server.start()
        report_port(ready, listening.tcp[0][1])
        await server.serve_forever()

    uvloop.run(main())


class Span:
    """One round's clock: ``warmup`` seconds not counted, then ``seconds`` counted.

    The measuring loop calls ``over(count)`` now and then with its running count; once
    that says True, ``rate`` is the count per second within the counted part.
    """

    __slots__ = ("first", "marks", "rate", "start")

    def __init__(self, warmup: float, seconds: float) -> None:
        now = time.perf_counter()
        self.marks = (now + warmup, now + warmup + seconds)
        self.first = 0
        self.start = 0.0
        self.rate = 0.0

    def over(self, count: int) -> bool:
        now = time.perf_counter()
        if not self.start:
            if now >= self.marks[0]:
                self.first, self.start = count, now
            return False
        if now < self.marks[1]:
            return False
        self.rate = (count - self.first) / (now - self.start)
        return True


def timed_rounds(
    variants: dict[str, Callable[[], float]], rounds: int, *, pause: float = 0.05
) -> dict[str, float]:
    """Median of each variant over ``rounds``, interleaved (A B C A B C ...).

    Interleaving spreads the machine's slow moments over every variant instead of
    letting one variant's rounds all land in them.
    """
    return {name: median(values) for name, values in interleaved(variants, rounds, pause).items()}


def interleaved(
    variants: dict[str, Callable[[], float]], rounds: int, pause: float = 0.05
) -> dict[str, list[float]]:
    """Every round's figure of each variant, measured A B C A B C ..."""
    results: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, measure in variants.items():
            results[name].append(measure())
            time.sleep(pause)
    return results


def ratio_median(ours: list[float], baseline: list[float]) -> float:
    """Median of the per-round ratios: each round's figure over its neighbour baseline's.

    On a shared, noisy machine two figures taken seconds apart see the same load, so
    their ratio is steadier than the ratio of two medians.
    """
    return median([a / b for a, b in zip(ours, baseline, strict=True)])
