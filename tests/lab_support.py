"""Running the course's own programs (tests/lab_programs/) and the lab in tests.

A program is run exactly as the notes write it; only its host and port literals are
changed, in a copy, so that tests can run in parallel on free ports.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest

from sockhub.lab.conn import listening
from sockhub.lab.limits import LabLimits
from sockhub.lab.peer import Peer
from sockhub.lab.serve import Options, RunningLab, start_lab
from sockhub.lab.tcp import json_in

PROGRAMS = Path(__file__).resolve().parent / "lab_programs"
HOSTS = ("192.168.61.114", "0.0.0.0", "localhost")
# the port literal each program was written with
PORTS = {
    "a32": 999, "a33": 999, "a341": 8080, "a351": 8080, "a352": 8080, "a353": 8080,
    "a362_exec": 8000, "a363": 8080, "a361_chat": 9999, "a362_chat": 9999,
    "b4_greeting": 8898, "b4_reuse": 8898, "b4_udp": 9000, "b_qq": 8081, "b_time": 9000,
    "b5_exec": 8888, "b5_udp": 9000, "b5_sticky": 8080, "b_decimal": 8080, "b_struct": 8080,
    "b_dict": 8080, "b_ftp": 8080, "b7": 9999, "b8": 9999, "c": 9696, "d": 9000,
    "e_chat": 6666, "e_sticky": 7777, "e_decimal": 8888,
}  # fmt: skip


def _original_port(name: str) -> int:
    for prefix in sorted(PORTS, key=len, reverse=True):
        if name.startswith(prefix):
            return PORTS[prefix]
    raise KeyError(name)


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def course_program(name: str, port: int, where: Path) -> Path:
    """A copy of program ``name`` talking to 127.0.0.1:``port`` instead of its own address."""
    text = (PROGRAMS / f"{name}.py").read_text(encoding="utf-8")
    for host in HOSTS:
        text = text.replace(f"'{host}'", "'127.0.0.1'").replace(f'"{host}"', '"127.0.0.1"')
    text, n = re.subn(rf"(?<!\d){_original_port(name)}(?!\d)", str(port), text)
    assert n, f"{name} has no port literal"
    path = where / f"{name}.py"
    path.write_text(text, encoding="utf-8")
    return path


class Program:
    """A course program in a subprocess; its output is collected as it comes."""

    def __init__(self, path: Path, stdin: str | None = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-u", str(path)],
            cwd=path.parent,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, "PYTHONIOENCODING": "utf-8"},
        )
        self.out = bytearray()
        self.err = bytearray()
        self._readers = [
            threading.Thread(target=self._pump, args=(self.proc.stdout, self.out), daemon=True),
            threading.Thread(target=self._pump, args=(self.proc.stderr, self.err), daemon=True),
        ]
        for reader in self._readers:
            reader.start()
        if stdin is not None:
            self.feed(stdin)

    @staticmethod
    def _pump(pipe: object, sink: bytearray) -> None:
        assert pipe is not None
        while chunk := pipe.read1(65536):  # type: ignore[attr-defined]
            sink += chunk

    @property
    def text(self) -> str:
        return (self.out + self.err).decode("utf-8", "replace")

    def feed(self, text: str, encoding: str = "utf-8") -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text.encode(encoding))
        self.proc.stdin.flush()

    def end_input(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()

    def wait_for(self, text: str, limit: float = 15.0) -> str:
        """Poll the output until ``text`` shows up (or the program ended without it)."""
        deadline = time.monotonic() + limit
        while text not in self.text:
            if self.proc.poll() is not None:
                for reader in self._readers:
                    reader.join(5)
                break
            if time.monotonic() > deadline:
                break
            time.sleep(0.01)
        assert text in self.text, f"{text!r} never came; output:\n{self.text}"
        return self.text

    def finish(self, limit: float = 15.0) -> str:
        """Wait for the program to end by itself; its whole output."""
        self.proc.wait(timeout=limit)
        for reader in self._readers:
            reader.join(5)
        return self.text

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                with suppress(OSError):
                    pipe.close()


@contextmanager
def program(name: str, port: int, where: Path, stdin: str | None = None) -> Iterator[Program]:
    prog = Program(course_program(name, port, where), stdin)
    try:
        yield prog
    finally:
        prog.stop()


def wait_listening(port: int, limit: float = 15.0) -> None:
    """Until a course server listens on ``port``, seen in /proc: a probing connection would
    be a client that connects and leaves, which is what breaks several of the notes' servers."""
    deadline = time.monotonic() + limit
    while not listening(port):
        assert time.monotonic() < deadline, f"nothing listens on {port}"
        time.sleep(0.02)


class LabThread:
    """``start_lab`` on its own loop in a thread, so blocking course programs can use it."""

    def __init__(self, opts: Options) -> None:
        self.opts = opts
        self.loop = asyncio.new_event_loop()
        self.running: RunningLab | None = None
        self._ready: Future[RunningLab] = Future()
        self._stop = asyncio.Event()
        self._thread = threading.Thread(target=self._main, daemon=True)

    def _main(self) -> None:
        self.loop.run_until_complete(self._run())
        self.loop.close()

    async def _run(self) -> None:
        try:
            self.running = await start_lab(self.opts)
        except BaseException as exc:
            self._ready.set_exception(exc)
            return
        self._ready.set_result(self.running)
        await self._stop.wait()
        await self.running.close()

    def start(self) -> LabThread:
        self._thread.start()
        self._ready.result(timeout=30)
        return self

    def port(self, fmt: str) -> int:
        assert self.running is not None
        return next(lst.port for lst in self.running.listeners if lst.format == fmt)

    def wait_logged(
        self, caplog: pytest.LogCaptureFixture, *texts: str, limit: float = 15.0
    ) -> None:
        """Until the lab logged one of ``texts``."""
        deadline = time.monotonic() + limit
        while not any(t in r.getMessage() for r in caplog.records for t in texts):
            assert time.monotonic() < deadline, f"the lab never logged any of {texts}"
            time.sleep(0.01)

    def wait_members(self, room: str, n: int, limit: float = 15.0) -> None:
        """Until ``n`` course clients are in the lab's chat ``room``."""
        assert self.running is not None
        members = self.running.lab.rooms[room].members
        deadline = time.monotonic() + limit
        while len(members) < n:
            assert time.monotonic() < deadline, f"{room} never had {n} members"
            time.sleep(0.01)

    def stop(self) -> None:
        if self._thread.is_alive():
            self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=30)


@contextmanager
def lab(**options: object) -> Iterator[LabThread]:
    running = LabThread(Options(base_port=0, **options)).start()  # type: ignore[arg-type]
    try:
        yield running
    finally:
        running.stop()


async def ftp_header(sent: bytes, max_header: int = LabLimits().max_header) -> object:
    """What the lab's ftp-put makes of ``sent`` (then EOF) as its ``i`` + JSON header.

    ftp-put itself needs a sockhub server; the header is read before any storage, here.
    """
    got: asyncio.Future[object] = asyncio.get_running_loop().create_future()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = Peer("ftp-put", reader, writer, LabLimits(max_header=max_header))
        got.set_result(await json_in(peer, max_header))
        await peer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    async with server:
        port = server.sockets[0].getsockname()[1]
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(sent)
        writer.write_eof()
        result = await got
        writer.close()
    return result
