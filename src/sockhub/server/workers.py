"""``--workers N``: N server processes on one port, the kernel spreading connections.

Each worker is a forked copy of the configured process that listens with SO_REUSEPORT
on the same port; what the workers share (chat rooms, order, history, presence) goes
through the broker, which must therefore span processes (Redis). The parent only
watches: it forwards SIGTERM/SIGINT, and starts a worker again when one dies without
being asked to (a crashed worker's chat members are cleaned up by its node lease); a
worker whose parent dies gets SIGTERM (Linux), so none is left serving alone.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import socket
import time
from collections.abc import Callable
from types import FrameType

__all__ = ["RESTART_PAUSE", "reserve_port", "run_workers"]

log = logging.getLogger("sockhub.server")

PR_SET_PDEATHSIG = 1
"""prctl option: the signal a process gets when its parent dies (linux/prctl.h)."""

RESTART_PAUSE = 1.0
"""Pause before a crashed worker is started again (a worker that cannot start at all
must not spin)."""


def reserve_port(host: str, port: int) -> tuple[socket.socket, int]:
    """A bound, not listening, SO_REUSEPORT socket: with port 0 it picks the port every
    worker then binds, and holding it keeps the port ours while workers come and go."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock, int(sock.getsockname()[1])


def _die_with(parent: int) -> None:
    """Have the kernel send this worker SIGTERM when the parent dies (kill -9 of the
    parent must not leave workers serving on their own). Linux only; elsewhere
    workers outlive a parent that was killed."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


def _fork(index: int, target: Callable[[int], int]) -> int:
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        _die_with(parent)
        code = 1
        try:
            code = target(index)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            log.exception("worker %d failed", index)
        finally:
            os._exit(code)
    return pid


def run_workers(count: int, target: Callable[[int], int]) -> int:
    """Run ``target(index)`` in ``count`` forked workers until a signal stops them all."""
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(workers):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    workers: dict[int, int] = {}
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for index in range(count):
        workers[_fork(index, target)] = index
    worst = 0
    while workers:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        index = workers.pop(pid, -1)
        if index < 0:
            continue
        code = os.waitstatus_to_exitcode(status)
        if stopping:
            worst = max(worst, code if code > 0 else 0)
            continue
        log.error("worker %d (pid %d) ended with %d; starting it again", index, pid, code)
        time.sleep(RESTART_PAUSE)
        if not stopping:
            workers[_fork(index, target)] = index
    return worst
