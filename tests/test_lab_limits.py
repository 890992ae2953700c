"""Every bound of ``lab serve`` (lab/limits.py), each set small and met by a course client."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sockhub.lab.console import Console
from sockhub.lab.limits import LabLimits
from sockhub.lab.udp import CoursePort

from .lab_support import LabThread, ftp_header, lab


@pytest.fixture
def logged(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="sockhub.lab")
    return caplog


def connect(running: LabThread, fmt: str) -> socket.socket:
    return socket.create_connection(("127.0.0.1", running.port(fmt)), timeout=10)


@pytest.mark.parametrize("fmt", ["upper", "upper-line"])
def test_a_silent_course_client_is_closed_after_the_idle_timeout(
    logged: pytest.LogCaptureFixture, fmt: str
) -> None:
    with lab(only=(fmt,), limits=LabLimits(idle_timeout=0.2)) as running:
        with connect(running, fmt) as s:
            s.sendall(b"hi\n")
            assert s.recv(10) == b"HI\n"
            assert s.recv(10) == b""  # then silence: the lab closes
        running.wait_logged(logged, "said nothing for 0.2 s; closing")


def test_connections_per_listener(logged: pytest.LogCaptureFixture) -> None:
    with lab(only=("echo",), limits=LabLimits(connections_per_listener=2)) as running:
        held = [connect(running, "echo") for _ in range(2)]
        try:
            for s in held:
                s.sendall(b"x")
                assert s.recv(1) == b"x"  # served, so it holds a place
            with connect(running, "echo") as extra:
                assert extra.recv(1) == b""
        finally:
            for s in held:
                s.close()
        running.wait_logged(logged, "refused: 2 connections are already open")
        deadline = time.monotonic() + 10
        while True:  # places come back once the held clients' connections are closed
            with connect(running, "echo") as again, contextlib.suppress(ConnectionError):
                again.sendall(b"y")
                if again.recv(1) == b"y":
                    break
            assert time.monotonic() < deadline, "the places never came back"


def test_max_line(logged: pytest.LogCaptureFixture) -> None:
    with lab(only=("upper-line",), limits=LabLimits(max_line=64)) as running:
        with connect(running, "upper-line") as s:
            s.sendall(b"a" * 63 + b"\n")
            got = b""
            while len(got) < 64:
                got += s.recv(100)
            assert got == b"A" * 63 + b"\n"
            s.sendall(b"b" * 65 + b"\n")
            assert s.recv(10) == b""
        running.wait_logged(logged, "sent a line over 64 bytes; closing")


async def test_max_header(logged: pytest.LogCaptureFixture) -> None:
    ok = b'{"cmd": "put", "filename": "a", "filesize": 1}'.ljust(64)
    got = await ftp_header(struct.pack("i", 64) + ok, max_header=64)
    assert got == {"cmd": "put", "filename": "a", "filesize": 1}
    assert await ftp_header(struct.pack("i", 65) + ok + b" ", max_header=64) is None
    assert any(
        "announced a 65-byte header (the lab takes 1..64)" in r.getMessage() for r in logged.records
    )


def test_chat_members(logged: pytest.LogCaptureFixture) -> None:
    with lab(only=("chat",), limits=LabLimits(chat_members=2)) as running:
        members = [connect(running, "chat") for _ in range(2)]
        try:
            running.wait_members("chat", 2)
            with connect(running, "chat") as third:
                assert third.recv(10) == b""
            running.wait_logged(logged, "refused: the chat room is full")
            members[0].sendall(b"hello")
            assert b"hello" in members[1].recv(1024)
        finally:
            for s in members:
                s.close()


def test_a_chat_member_that_never_reads_is_dropped(logged: pytest.LogCaptureFixture) -> None:
    with lab(only=("chat",), limits=LabLimits(chat_backlog=4096)) as running:
        with socket.socket() as deaf, connect(running, "chat") as talker:
            deaf.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            deaf.connect(("127.0.0.1", running.port("chat")))
            running.wait_members("chat", 2)
            talker.setblocking(False)
            while not any("stopped reading; dropped" in r.getMessage() for r in logged.records):
                with contextlib.suppress(BlockingIOError):
                    talker.send(b"x" * 1000)  # one message a recv, to everyone in the room
                with contextlib.suppress(BlockingIOError):
                    while talker.recv(65536):  # the talker reads what comes back; deaf never
                        pass
        running.wait_logged(logged, "dropped after 4096 bytes waited")


def test_a_client_that_never_reads_is_closed_after_the_send_timeout(
    logged: pytest.LogCaptureFixture,
) -> None:
    with lab(only=("echo",), limits=LabLimits(send_timeout=0.2)) as running:
        with connect(running, "echo") as s:
            s.setblocking(False)
            chunk = b"x" * 65536
            while not any("read none of our answer" in r.getMessage() for r in logged.records):
                try:
                    s.send(chunk)  # echoed back, never read: the lab's writes back up
                except BlockingIOError:
                    time.sleep(0.01)  # the lab is still reading what we sent: poll again
                except ConnectionError:
                    break
    running.wait_logged(logged, "read none of our answer for 0.2 s; closing")


def test_hmac_challenge_timeout(logged: pytest.LogCaptureFixture) -> None:
    with lab(only=("hmac-upper",), limits=LabLimits(challenge_timeout=0.2)) as running:
        with connect(running, "hmac-upper") as s:
            assert len(s.recv(32)) == 32
            assert s.recv(10) == b""  # never answered
        running.wait_logged(logged, "sent fewer than 16 bytes within 0.2 s")


def test_udp_reply_max() -> None:
    with lab(only=("udp-upper",), limits=LabLimits(udp_reply_max=100)) as running:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.settimeout(10)
            u.sendto(b"x" * 2000, ("127.0.0.1", running.port("udp-upper")))
            assert u.recvfrom(4096)[0] == b"X" * 100


@pytest.fixture
def silent_console() -> Iterator[int]:
    """A console nobody types at: the write end of its pipe stays open and quiet."""
    read, write = os.pipe()
    yield read
    os.close(write)


async def test_udp_questions_waiting_for_the_console_and_for_how_long(
    silent_console: int, logged: pytest.LogCaptureFixture
) -> None:
    stream = open(silent_console, encoding="utf-8")  # noqa: SIM115 (the console thread owns it)
    console = Console(stream=stream)
    limits = LabLimits(console_pending=2, console_wait=0.2)
    loop = asyncio.get_running_loop()
    transport, port = await loop.create_datagram_endpoint(
        lambda: CoursePort("udp-qq", limits, None, console), local_addr=("127.0.0.1", 0)
    )
    try:
        addr = transport.get_extra_info("sockname")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            for n in range(3):
                u.sendto(f"q{n}".encode(), addr)
            while not any("already wait for the console" in r.getMessage() for r in logged.records):
                await asyncio.sleep(0.01)
        assert len(port._pending) == 2
        while port._pending:  # each waits console_wait for its turn's answer, then gives up
            await asyncio.sleep(0.01)
        gave_up = [r for r in logged.records if "no reply from the console" in r.getMessage()]
        assert len(gave_up) == 2
    finally:
        transport.close()
        for task in list(port._pending):
            task.cancel()


@pytest.mark.parametrize(
    ("flag", "said"),
    [
        ("idle_timeout=soon", "cannot use 'soon'"),
        ("nope=1", "unknown lab limit nope"),
        ("udp_reply_max=2000", "udp_reply_max may not exceed 1024"),
        ("chat_members=0", "chat_members must be positive"),
        ("idle_timeout", "--limit wants NAME=VALUE"),
    ],
)
def test_bad_limit_flags_are_usage_errors(flag: str, said: str) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "sockhub.cli.main", "lab", "serve", "--limit", flag],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2, out.stderr
    assert said in out.stderr and "Traceback" not in out.stderr


def test_udp_replies_per_source() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "sockhub.cli.main", "lab", "serve", "--port", "0", "--json",
         "--only", "udp-hi", "--limit", "udp_burst=2", "--limit", "udp_replies_per_sec=0.001"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    try:
        port = json.loads(proc.stdout.readline())["port"]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.settimeout(10)
            for _ in range(3):
                u.sendto(b"hello", ("127.0.0.1", port))
            assert [u.recvfrom(64)[0] for _ in range(2)] == [b"hi", b"hi"]
            while "over its UDP reply budget" not in proc.stderr.readline():
                pass
            u.setblocking(False)
            with pytest.raises(BlockingIOError):
                u.recvfrom(64)  # the third datagram was not answered
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        proc.stdout.close()
        proc.stderr.close()


def test_a_config_file_sets_limits_and_a_flag_wins(tmp_path: Path) -> None:
    config = tmp_path / "lab.toml"
    config.write_text("[limits]\nchat_members = 0\nidle_timeout = 60\n")
    args = [sys.executable, "-m", "sockhub.cli.main", "lab", "serve", "--config", str(config)]
    out = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "chat_members must be positive" in out.stderr
    config.write_text("[limits]\nchat_members = 0\n[other]\n")
    out = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "one [limits] table" in out.stderr
    config.write_text("[limits]\nchat_members = 0\n")
    proc = subprocess.Popen(
        [*args, "--limit", "chat_members=5", "--port", "0", "--json", "--only", "echo"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    try:
        assert json.loads(proc.stdout.readline())["format"] == "echo"  # the flag won: it serves
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        proc.stdout.close()
