"""The classic services answer the standard tools: rdate (RFC 868 TCP/UDP, SNTP), nc, socat.

The server's clock is pinned to a known instant, so "rdate prints the server's time"
is checked exactly, not approximately.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sockhub.services.classic import ClassicService

from .conftest import running_server

PINNED = 1_000_000_000.25  # 2001-09-09 01:46:40.25 UTC
DAYTIME = time.strftime("%A, %B %d, %Y %H:%M:%S-%Z", time.localtime(PINNED)).encode() + b"\r\n"
ZERO_PORTS = {f"classic_{s}_port": 0 for s in ("echo", "daytime", "time", "sntp")}


def tool(name: str) -> str:
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if path is None:
        pytest.skip(f"{name} is not installed (make sysdeps installs it)")
    return path


@pytest.fixture
def classic(tmp_path: Path) -> Iterator[ClassicService]:
    service = ClassicService(clock=lambda: PINNED)
    with running_server(tmp_path / "data", services=[service], classic=True, **ZERO_PORTS):
        yield service


def run(*argv: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    done = subprocess.run(
        argv, input=stdin, capture_output=True, timeout=30, env={**os.environ, "TZ": "UTC"}
    )
    assert done.returncode == 0, done
    return done


def rdate(classic: ClassicService, *flags: str, service: str, transport: str) -> str:
    port = str(classic.port(service, transport))
    return run(tool("rdate"), *flags, "-p", "-o", port, "127.0.0.1").stdout.decode()


def test_rdate_reads_rfc868_over_tcp_and_udp(classic: ClassicService) -> None:
    assert "Sun Sep  9 01:46:40 UTC 2001" in rdate(classic, service="time", transport="tcp")
    assert "Sun Sep  9 01:46:40 UTC 2001" in rdate(classic, "-u", service="time", transport="udp")


def test_rdate_reads_sntp(classic: ClassicService) -> None:
    out = rdate(classic, "-n", service="sntp", transport="udp")
    # rdate adds half the round trip to the server's transmit time: with the clock pinned
    # at .25 s that stays inside the same second unless rdate stalls for most of a second
    assert "Sun Sep  9 01:46:40 UTC 2001" in out or "Sun Sep  9 01:46:41 UTC 2001" in out, out


def test_nc_and_socat_echo_over_tcp(classic: ClassicService) -> None:
    port = str(classic.port("echo"))
    assert run(tool("nc"), "-N", "127.0.0.1", port, stdin=b"hello\n").stdout == b"hello\n"
    payload = os.urandom(300_000)  # more than one socket buffer, binary, both ways at once
    assert run(tool("socat"), "-", f"TCP:127.0.0.1:{port}", stdin=payload).stdout == payload


def test_nc_reads_daytime_over_tcp(classic: ClassicService) -> None:
    port = str(classic.port("daytime"))
    assert run(tool("nc"), "-d", "127.0.0.1", port).stdout == DAYTIME


def ask_udp(argv: list[str], line: bytes) -> bytes:
    """Send one line through a UDP tool that never exits by itself; return its first line."""
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(line)
        proc.stdin.flush()
        return proc.stdout.readline()
    finally:
        proc.kill()
        proc.wait()


def test_socat_and_nc_over_udp(classic: ClassicService) -> None:
    echo = str(classic.port("echo", "udp"))
    assert ask_udp([tool("socat"), "-", f"UDP:127.0.0.1:{echo}"], b"ping\n") == b"ping\n"
    daytime = str(classic.port("daytime", "udp"))
    assert ask_udp([tool("nc"), "-u", "127.0.0.1", daytime], b"\n") == DAYTIME
