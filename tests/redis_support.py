"""A private ``redis-server`` for tests: a free loopback port, its own folder, its PID.

Never the machine's own Redis: every test that needs one starts this, and stops (or
kills, or restarts) exactly the process it started.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import hiredis
import pytest

__all__ = ["RedisServer", "free_port"]

TRIES = 5
"""Ports a first start tries before giving up."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """One redis-server process; ``aof`` keeps an append-only file (fsync always) in ``folder``."""

    def __init__(
        self, folder: Path, *, aof: bool = False, extra: Sequence[str] = (), bus: bool = False
    ) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            pytest.skip("redis-server is not installed (make sysdeps)")
        self.exe = exe
        self.folder = folder
        self.aof = aof
        self.extra = list(extra)
        """More redis-server options (a cluster node's)."""
        self.bus = bus
        """A cluster node: it listens on a bus port too (given: the default, port + 10000,
        may be past 65535)."""
        self.port = 0
        """Chosen at the first start, kept by a restart."""
        self.proc: subprocess.Popen[bytes] | None = None
        folder.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> RedisServer:
        """Start, on the port of an earlier start (a restart) or on free ports. A free port
        can be taken by another process between choosing and binding it (the other test
        worker's servers): the first start then tries others."""
        for _ in range(TRIES if not self.port else 1):
            if self._started(self.port or free_port()):
                return self
        raise RuntimeError(f"redis-server did not start: {self.folder / 'redis.log'}")

    def _started(self, port: int) -> bool:
        args = [self.exe, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
        args += ["--dir", str(self.folder), "--protected-mode", "no"]
        if self.aof:
            args += ["--appendonly", "yes", "--appendfsync", "always"]
        else:
            args += ["--appendonly", "no"]
        if self.bus:
            args += ["--cluster-port", str(free_port())]
        args += self.extra
        log_path = self.folder / "redis.log"
        logged = log_path.stat().st_size if log_path.exists() else 0
        with log_path.open("ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        self.port = port
        deadline = time.monotonic() + 20
        while not self.ping():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                with log_path.open("rb") as log:
                    log.seek(logged)
                    taken = b"Address already in use" in log.read()
                self.stop()
                if taken:
                    self.port = 0
                    return False
                raise RuntimeError(f"redis-server did not start: {log_path}")
            time.sleep(0.01)
        return True

    def ping(self) -> bool:
        try:
            return self.command("PING") == b"+PONG\r\n"
        except OSError:
            return False

    def command(self, *args: str) -> bytes:
        """One command, its raw reply (enough for PING, CLIENT KILL and the like)."""
        wire = f"*{len(args)}\r\n" + "".join(f"${len(a.encode())}\r\n{a}\r\n" for a in args)
        reader = hiredis.Reader()
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            s.sendall(wire.encode())
            reply = b""
            while (chunk := s.recv(1 << 16)) != b"":
                reply += chunk
                reader.feed(chunk)
                if reader.gets() is not False:
                    break  # one whole reply (a bulk one may come in pieces)
            return reply

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """End the process (by its PID) and wait for it."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            self.proc.wait(timeout=20)
        self.proc = None

    def restart(self, *, empty: bool) -> None:
        """Kill -9 and start again on the same port: with ``empty`` the data is gone."""
        self.stop(signal.SIGKILL)
        if empty:
            for name in os.listdir(self.folder):
                path = self.folder / name
                if name != "redis.log":
                    shutil.rmtree(path) if path.is_dir() else path.unlink()
        self.start()
