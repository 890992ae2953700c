"""Classic services against raw sockets: SNTP fields, bounds at their limits, configuration."""

from __future__ import annotations

import os
import re
import select
import signal
import socket
import struct
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from sockhub.server.config import ConfigError, load_config
from sockhub.services import default_services
from sockhub.services.classic import ClassicService
from sockhub.services.classic.clocks import NTP_EPOCH_OFFSET, ntp_timestamp
from sockhub.services.classic.sntp import sntp_reply

from .conftest import running_server
from .test_classic_tools import PINNED, ZERO_PORTS, classic, tool

__all__ = ["classic"]  # the fixture, shared with the tool tests

SERVE = [sys.executable, "-m", "sockhub", "serve", "--port", "0"]
NTP = struct.Struct("!BBBb4s4s4sQ8sQQ")


def ntp_request(mode: int = 3, version: int = 4, cookie: bytes = b"cookie!!") -> bytes:
    return bytes([(version << 3) | mode, 0, 6, 0]) + bytes(36) + cookie


def udp(port: int, source: str = "127.0.0.1") -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", port))
    sock.settimeout(10)
    return sock


def test_sntp_reply_fields(classic: ClassicService) -> None:
    with udp(classic.port("sntp", "udp")) as sock:
        sock.send(ntp_request(version=3) + b"x" * 20)  # extension bytes are ignored
        reply = sock.recv(100)
    first, stratum, poll, precision, _delay, _disp, ref, reference, orig, rx, tx = NTP.unpack(reply)
    assert (first >> 6, (first >> 3) & 7, first & 7) == (0, 3, 4)  # LI 0, VN copied, server
    assert (stratum, poll, precision, ref) == (1, 6, -20, b"LOCL")
    assert orig == b"cookie!!"  # the client's transmit timestamp, verbatim
    pinned = struct.unpack("!Q", ntp_timestamp(PINNED))[0]
    assert rx == tx == reference == pinned
    assert (rx >> 32) - NTP_EPOCH_OFFSET == 1_000_000_000 and rx & 0xFFFF_FFFF == 1 << 30


def test_sntp_answers_only_client_requests(classic: ClassicService) -> None:
    with udp(classic.port("sntp", "udp")) as sock:
        for bad in (
            ntp_request(mode=4),
            ntp_request(mode=1),
            ntp_request(mode=5),
            ntp_request(version=0),
            ntp_request()[:47],
            b"",
        ):
            sock.send(bad)
        sock.send(ntp_request(cookie=b"answer!!"))
        assert sock.recv(100)[24:32] == b"answer!!"  # the first reply is to the good one
    assert sntp_reply(ntp_request(version=5), 0.0, 0.0) is None


def test_rfc868_and_echo_over_udp(classic: ClassicService) -> None:
    with udp(classic.port("time", "udp")) as sock:
        sock.send(b"")
        assert sock.recv(10) == struct.pack("!I", 1_000_000_000 + NTP_EPOCH_OFFSET)
    with udp(classic.port("echo", "udp")) as sock:
        sock.send(b"\x00\xffbinary")
        assert sock.recv(100) == b"\x00\xffbinary"


@pytest.mark.skipif(os.geteuid() != 0, reason="binding source port 7 needs root")
def test_no_echo_loop_with_another_echo_server(classic: ClassicService) -> None:
    port = classic.port("echo", "udp")
    forged = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        forged.bind(("127.0.0.1", 7))  # as if another echo server had sent it
    except OSError:
        forged.close()
        pytest.skip("port 7 is taken")
    with forged, udp(port) as honest:
        forged.sendto(b"loop?", ("127.0.0.1", port))
        honest.send(b"after")
        assert honest.recv(100) == b"after"
        forged.settimeout(0.3)
        with pytest.raises(TimeoutError):
            forged.recv(100)


@contextmanager
def limited(tmp_path: Path, **limits: float) -> Iterator[ClassicService]:
    service = ClassicService(clock=lambda: PINNED)
    with running_server(
        tmp_path / "data", services=[service], classic=True, **ZERO_PORTS, **limits
    ):
        yield service


def echo_conn(port: int, source: str = "127.0.0.1") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0))
    return sock


def closed(sock: socket.socket) -> bool:
    """Waits until the server closes or resets the connection; False if it sends instead."""
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def refused(sock: socket.socket) -> bool:
    """True when the server reset or closed the connection instead of echoing."""
    try:
        sock.sendall(b"x")
    except (ConnectionResetError, BrokenPipeError):
        return True
    return closed(sock)


def admitted(sock: socket.socket) -> bool:
    sock.sendall(b"y")
    return sock.recv(1) == b"y"


@pytest.mark.parametrize(
    ("limit", "other_source_admitted"),
    [("classic_connections", False), ("classic_connections_per_ip", True)],
)
def test_tcp_connection_caps_at_the_limit(
    tmp_path: Path, limit: str, other_source_admitted: bool
) -> None:
    with limited(tmp_path, **{limit: 2}) as service:
        port = service.port("echo")
        first, second = echo_conn(port), echo_conn(port)
        assert admitted(first) and admitted(second)
        with echo_conn(port) as third:
            assert refused(third)
        with echo_conn(port, "127.0.0.2") as other:
            assert admitted(other) if other_source_admitted else refused(other)
        first.close()
        second.close()


def test_idle_echo_connection_is_closed(tmp_path: Path) -> None:
    with (
        limited(tmp_path, classic_idle_timeout=0.2) as service,
        echo_conn(service.port("echo")) as c,
    ):
        assert admitted(c)
        assert closed(c)  # waits for the server to give up on the silent client


def test_echo_client_that_does_not_read_is_not_buffered(classic: ClassicService) -> None:
    """Echo stops reading a client that stops reading: its writes back up, not our memory."""
    with echo_conn(classic.port("echo")) as sock:
        sock.setblocking(False)
        chunk, written = bytes(1 << 16), 0
        while written < 64 << 20:  # without backpressure this would pass 64 MiB
            try:
                written += sock.send(chunk)
            except BlockingIOError:
                if not select.select([], [sock], [], 0.3)[1]:
                    break  # still full: the server has stopped reading us
        assert written < 64 << 20


def test_udp_replies_per_source_at_the_limit(tmp_path: Path) -> None:
    with limited(tmp_path, udp_burst=3, udp_replies_per_sec=0.001) as service:
        port = service.port("daytime", "udp")
        with udp(port) as sock:
            for _ in range(3):
                sock.send(b"")
                assert sock.recv(100).endswith(b"\r\n")
            sock.send(b"")
            sock.settimeout(0.3)
            with pytest.raises(TimeoutError):
                sock.recv(100)
        with udp(port, source="127.0.0.2") as other:
            other.send(b"")
            assert other.recv(100).endswith(b"\r\n")


def test_off_by_default_and_configurable(tmp_path: Path) -> None:
    assert not any(isinstance(s, ClassicService) for s in default_services(load_config({}, env={})))
    config = load_config({"classic": True, "classic_services": "time,sntp"}, env={})
    assert any(isinstance(s, ClassicService) for s in default_services(config))
    assert config.classic_services == ("time", "sntp")
    assert (config.classic_echo_port, config.classic_sntp_port) == (10007, 10123)
    with pytest.raises(ConfigError, match="ntp"):
        load_config({"classic_services": "time,ntp"}, env={})
    with pytest.raises(ConfigError, match="classic_time_port"):
        load_config({"classic_time_port": 70000}, env={})
    toml = tmp_path / "s.toml"
    toml.write_text('classic = true\nclassic_services = ["echo"]\nclassic_echo_port = 0\n')
    assert load_config(config_file=toml, env={}).classic_services == ("echo",)


def test_serve_flag_starts_only_the_chosen_services(tmp_path: Path) -> None:
    """A port flag alone turns classic on; the banner says where; rdate gets a real time."""
    proc = subprocess.Popen(
        [*SERVE, "--data", str(tmp_path), "--classic-services", "time", "--classic-time-port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if "classic" in line and "tcp" in line:
                break
        banner = "".join(lines)
        assert "classic time" in banner and "classic echo" not in banner, banner
        port = re.search(r"classic time\s+tcp 127\.0\.0\.1:(\d+)", banner)
        assert port is not None, banner
        done = subprocess.run(
            [tool("rdate"), "-p", "-o", port.group(1), "127.0.0.1"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert done.returncode == 0 and re.search(r"\d\d:\d\d:\d\d", done.stdout), done
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
