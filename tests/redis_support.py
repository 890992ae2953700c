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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """One redis-server process; ``aof`` keeps an append-only file (fsync always) in ``folder``."""

    def __init__(self, folder: Path, *, aof: bool = False, extra: Sequence[str] = ()) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            pytest.skip("redis-server is not installed (make sysdeps)")
        self.exe = exe
        self.folder = folder
        self.aof = aof
        self.extra = list(extra)
        """More redis-server options (a cluster node's)."""
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        folder.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> RedisServer:
        args = [self.exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        args += ["--dir", str(self.folder), "--protected-mode", "no"]
        if self.aof:
            args += ["--appendonly", "yes", "--appendfsync", "always"]
        else:
            args += ["--appendonly", "no"]
        args += self.extra
        log = (self.folder / "redis.log").open("ab")
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + 20
        while not self.ping():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start: {self.folder / 'redis.log'}")
            time.sleep(0.01)
        return self

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
