"""``sockhub lab serve`` itself: its listing, its UDP bound, what stays closed, its logs."""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from sockhub.lab.formats import FORMATS
from sockhub.lab.limits import LabLimits
from sockhub.lab.udp import bounded

from .lab_support import lab


def test_json_lists_every_open_listener_before_serving(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sockhub.cli.main",
            "lab",
            "serve",
            "--port",
            "0",
            "--json",
            "--server",
            "127.0.0.1:1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        rows = [json.loads(proc.stdout.readline()) for _ in range(17)]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        proc.stdout.close()  # type: ignore[union-attr]
        proc.stderr.close()  # type: ignore[union-attr]
    assert proc.returncode == 0
    assert {r["format"] for r in rows} == {f.name for f in FORMATS if not f.needs}
    assert all(r["host"] == "127.0.0.1" and r["port"] > 0 and r["section"] for r in rows)
    udp = {r["format"] for r in rows if r["transport"] == "udp"}
    assert udp == {"udp-upper", "udp-hi", "udp-time", "udp-qq", "udp-exec"}


def udp_ask(port: int, data: bytes) -> list[bytes]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(10)
        s.sendto(data, ("127.0.0.1", port))
        return [s.recvfrom(65535)[0]]


def test_udp_time_answers_the_notes_format_whole_and_never_amplifies(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="sockhub.lab")
    with lab(only=("udp-time", "udp-upper")) as running:
        port = running.port("udp-time")
        [answer] = udp_ask(port, b"%Y-%m-%d %X")
        assert len(answer) == 19 and answer[4:5] == b"-"  # e.g. 2026-12-03 06:00:00
        [padded] = udp_ask(port, b"%02040Y")
        assert len(padded) == 3 * len(b"%02040Y")
        [empty] = udp_ask(port, b"")
        assert empty == b""  # an answer, so recvfrom() returns, but 3 x 0 bytes
        [big] = udp_ask(running.port("udp-upper"), b"x" * 2000)
        assert big == b"X" * LabLimits().udp_reply_max
    assert any("reply cut by" in r.getMessage() for r in caplog.records)


def test_udp_bound_spans_both_datagrams_of_the_exec_format() -> None:
    replies, cut = bounded(b"ls", [b"e" * 10, b"o" * 10], 1024)
    assert replies == [b"eeeeee", b""] and cut == 14


def test_exec_and_files_formats_stay_closed_without_their_flags() -> None:
    with lab() as running:
        assert running.running is not None
        skipped = running.running.skipped
    assert skipped["exec-raw"] == "command execution is off (give --lab-exec)"
    assert "needs a sockhub server" in skipped["ftp-put"]


def test_exec_formats_refuse_a_public_address() -> None:
    with lab(host="0.0.0.0", lab_exec=True, only=("exec-raw", "echo")) as running:
        assert running.running is not None
        assert running.running.skipped["exec-raw"] == "command execution listens on loopback only"
        assert [lst.format for lst in running.running.listeners] == ["echo"]


def test_connections_and_anomalies_are_logged_in_plain_words(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="sockhub.lab")
    with lab(only=("upper",)) as running:
        with socket.create_connection(("127.0.0.1", running.port("upper")), timeout=10) as s:
            s.sendall(b" ")
            assert s.recv(10) == b" "
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
        running.wait_logged(caplog, "disconnected abruptly (connection reset)")
    words = " | ".join(r.getMessage() for r in caplog.records)
    assert "connected" in words and "sent only white space" in words


def test_cli_table_and_taken_port(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "sockhub.cli.main",
                "lab",
                "serve",
                "--port",
                str(port),
                "--only",
                "echo",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert out.returncode == 1
    assert "cannot listen" in out.stderr and "Traceback" not in out.stderr


def test_console_lines_answer_the_one_to_one_chats(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "sockhub.cli.main", "lab", "serve", "--port", "0", "--json",
         "--console", "--only", "console", "udp-qq", "--quiet"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    try:
        ports = {
            r["format"]: r["port"] for r in (json.loads(proc.stdout.readline()) for _ in range(2))
        }
        with socket.create_connection(("127.0.0.1", ports["console"]), timeout=10) as s:
            s.sendall("你好".encode("gbk"))  # E's homework client speaks GBK
            proc.stdin.write("在的\n".encode())
            proc.stdin.flush()
            assert s.recv(1024).decode("gbk") == "在的"
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.settimeout(10)
            u.sendto(b"hello there", ("127.0.0.1", ports["udp-qq"]))
            proc.stdin.write(b"hi\n")
            proc.stdin.flush()
            assert u.recvfrom(1024)[0] == b"hi"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            pipe.close()
    assert proc.returncode == 0
