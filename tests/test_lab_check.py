"""``sockhub lab check`` against the course's own servers, run as the notes write them: each
report card names that server's real pitfalls, and only those."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sockhub.lab.card import Card
from sockhub.lab.check import check

from .lab_support import course_program, free_port, lab, program, wait_listening

TIMEOUT = 5.0
# a UDP server answers from its loop at once; silence is what the failing cards wait out
UDP_TIMEOUT = 2.0
ALL_GOOD = {"basic": "pass", "quit": "pass", "reset": "pass", "empty": "pass"}
ONE_AT_A_TIME = {"two-clients": "warn"}

# server, format, its stdin (a person at its console), the verdicts its card must show
TCP_CASES = [
    # A 3.2: one client, then the program ends
    ("a32_echo_server", "echo", None, {"basic": "pass", "quit": "fail"}),
    # A 3.5.1 and C 3/4: no `if not data: break`, so a client that quits makes them spin
    ("a351_upper_server", "upper", None, {"basic": "pass", "quit": "fail"}),
    ("c3_server", "upper", None, {"basic": "pass", "quit": "fail"}),
    ("c4_server", "upper", None, {"basic": "pass", "quit": "fail"}),
    # A 3.5.2 and D: the fixed servers
    (
        "a352_upper_server",
        "upper",
        None,
        {**ALL_GOOD, "back-to-back": "pass", "big": "pass", **ONE_AT_A_TIME},
    ),
    (
        "d_upper_server",
        "upper",
        None,
        {**ALL_GOOD, "back-to-back": "pass", "big": "pass", **ONE_AT_A_TIME},
    ),
    # A 3.4.1: TextIOWrapper.write() drops the lines already read ahead
    (
        "a341_makefile_server",
        "upper-line",
        None,
        {**ALL_GOOD, "back-to-back": "fail", "big": "pass"},
    ),
    # B 8: one recv(1024) per connection
    ("b8_socketserver_server", "upper-once", None, {**ALL_GOOD, "empty": "warn", "big": "fail"}),
    # A 3.5.3: strip() then break on white space; raw output has no length
    (
        "a353_exec_server",
        "exec-raw",
        None,
        {
            "basic": "pass",
            "quit": "pass",
            "reset": "pass",
            "empty": "fail",
            "back-to-back": "fail",
            "big": "warn",
        },
    ),
    # B 5 and B's length servers: no try around recv(), so a reset kills them
    ("b5_exec_raw_server", "exec-raw2", None, {"basic": "pass", "quit": "pass", "reset": "fail"}),
    ("b_struct_server", "exec-len", None, {"basic": "pass", "quit": "pass", "reset": "fail"}),
    ("b_dict_server", "exec-json-ds", None, {"basic": "pass", "quit": "pass", "reset": "fail"}),
    ("b_decimal_server", "exec-decimal", None, {"basic": "pass", "quit": "pass", "reset": "fail"}),
    ("e_decimal_server", "decimal-text", None, {"basic": "pass", "quit": "pass", "reset": "fail"}),
    ("b7_hmac_server", "hmac-upper", None, {"basic": "pass", "quit": "pass", "reset": "fail"}),
    # A 3.6.2/3.6.3: `if not cmd_bytes: continue` spins once a client quits
    ("a362_exec_len_server", "exec-len", None, {"basic": "pass", "quit": "fail"}),
    ("a363_exec_json_server", "exec-json", None, {"basic": "pass", "quit": "fail"}),
    # C 9.1 and D: they survive everything but commands sent back to back
    (
        "c91_server",
        "exec-len",
        None,
        {**ALL_GOOD, "back-to-back": "fail", "big": "pass", **ONE_AT_A_TIME},
    ),
    (
        "d_exec_server",
        "exec-status",
        None,
        {**ALL_GOOD, "back-to-back": "fail", "big": "pass", **ONE_AT_A_TIME},
    ),
    # B 4 and C 2: one greeting, then the program ends
    ("b4_greeting_server", "greeting", None, {"basic": "pass", "quit": "fail"}),
    ("c2_server", "greeting-addr", None, {"basic": "pass", "quit": "fail"}),
    # C 8 and E: a person answers at the console (here: lines on its stdin)
    ("c8_server", "console", "pong\n" * 30, {"basic": "pass", "quit": "pass", "reset": "pass"}),
    # E's homework has no try around recv(): a client's reset kills it
    ("e_chat_server", "console", "pong\n" * 30, {"basic": "pass", "quit": "pass", "reset": "fail"}),
]


def run_check(fmt: str, port: int, **kw: object) -> Card:
    return asyncio.run(check(fmt, "127.0.0.1", port, timeout=TIMEOUT, **kw))  # type: ignore[arg-type]


def verdicts(card: Card) -> dict[str, str]:
    return {r.probe: r.verdict for r in card.results}


def assert_card(card: Card, expected: dict[str, str]) -> None:
    got = verdicts(card)
    wrong = {p: (got.get(p), v) for p, v in expected.items() if got.get(p) != v}
    assert not wrong, f"(got, expected) {wrong}\n{card.render()}"


@pytest.mark.parametrize(
    ("name", "fmt", "stdin", "expected"), TCP_CASES, ids=[c[0] for c in TCP_CASES]
)
def test_card_of_course_tcp_server(
    tmp_path: Path, name: str, fmt: str, stdin: str | None, expected: dict[str, str]
) -> None:
    port = free_port()
    with program(name, port, tmp_path, stdin):
        wait_listening(port)
        assert_card(run_check(fmt, port), expected)


def test_card_of_download_server(tmp_path: Path) -> None:
    (tmp_path / "girl.png").write_bytes(bytes(range(256)) * 20)
    port = free_port()
    with program("c92_server", port, tmp_path):
        wait_listening(port)
        card = run_check("ftp-get", port)
    assert_card(card, {"basic": "pass", "quit": "pass", "reset": "pass", "back-to-back": "fail"})


def test_card_of_upload_server(tmp_path: Path) -> None:
    (tmp_path / "file_upload").mkdir()
    port = free_port()
    with program("b_ftp_server", port, tmp_path):
        wait_listening(port)
        card = run_check("ftp-put", port)
    assert_card(card, {"basic": "pass", "second-file": "pass", "reset": "pass"})
    # the format has no answer: the card says so rather than claiming the file was stored
    assert "cannot be seen from here" in card.results[0].why
    assert (tmp_path / "file_upload" / "lab-check.bin").stat().st_size == 3072


def test_card_of_chat_servers(tmp_path: Path) -> None:
    port = free_port()
    # A 3.6.2 removes a member that leaves
    with program("a362_chat_server", port, tmp_path):
        wait_listening(port)
        assert_card(
            run_check("chat", port),
            {"basic": "pass", "several": "pass", "quit": "pass", "reset": "pass"},
        )
    port = free_port()
    # A 3.6.1 keeps sending to a member that left, and blames the sender for the error
    with program("a361_chat_server", port, tmp_path):
        wait_listening(port)
        assert_card(
            run_check("chat-plain", port), {"basic": "pass", "several": "pass", "quit": "fail"}
        )


UDP_CASES = [
    # C 6 and B 4: one datagram, then the program ends
    ("c6_udp_server", "udp-upper", None, {"basic": "pass", "empty": "fail"}),
    ("b4_udp_server", "udp-hi", None, {"basic": "pass", "empty": "fail"}),
    # C 7: recvfrom(1024) loses the rest of a big datagram
    (
        "c7_udp_server",
        "udp-upper",
        None,
        {"basic": "pass", "empty": "pass", "amplify": "pass", "big": "warn"},
    ),
    # B's time server formats whatever it is sent: a padded format amplifies
    ("b_time_server", "udp-time", None, {"basic": "pass", "empty": "pass", "amplify": "warn"}),
    ("b_qq_server", "udp-qq", None, {"basic": "fail"}),
    ("b_qq_server", "udp-qq", "pong\n" * 10, {"basic": "pass"}),
    ("b5_udp_exec_server", "udp-exec", None, {"basic": "pass", "empty": "pass"}),
]


@pytest.mark.parametrize(
    ("name", "fmt", "stdin", "expected"), UDP_CASES, ids=[f"{c[0]}-{bool(c[2])}" for c in UDP_CASES]
)
def test_card_of_course_udp_server(
    tmp_path: Path, name: str, fmt: str, stdin: str | None, expected: dict[str, str]
) -> None:
    port = free_port(socket.SOCK_DGRAM)
    with program(name, port, tmp_path, stdin):
        wait_bound_udp(port)
        card = asyncio.run(
            check(
                fmt,
                "127.0.0.1",
                port,
                timeout=UDP_TIMEOUT,
            )
        )
    assert_card(card, expected)


def wait_bound_udp(port: int) -> None:
    """Until something is bound to UDP ``port`` (binding it ourselves fails then)."""
    deadline = time.monotonic() + 15
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return
        assert time.monotonic() < deadline, "the UDP server never bound its port"
        time.sleep(0.02)


def test_restart_without_reuseaddr_fails_and_with_it_passes(tmp_path: Path) -> None:
    port = free_port()
    bare = course_program("a352_upper_server", port, tmp_path)
    card = run_check("upper", port, run=[sys.executable, str(bare)])
    assert verdicts(card)["restart"] == "fail"
    assert "Address already in use" in next(r.why for r in card.results if r.probe == "restart")
    port = free_port()
    reuse = course_program("d_upper_server", port, tmp_path)
    assert verdicts(run_check("upper", port, run=[sys.executable, str(reuse)]))["restart"] == "fail"
    port = free_port()
    fixed = course_program("c91_server", port, tmp_path)
    assert (
        verdicts(run_check("exec-len", port, run=[sys.executable, str(fixed)]))["restart"] == "pass"
    )


def test_the_labs_own_listeners_pass_their_basic_probes(tmp_path: Path) -> None:
    with lab() as running:
        for fmt in (
            "echo",
            "upper",
            "upper-line",
            "hmac-upper",
            "chat",
            "chat-plain",
            "udp-upper",
            "udp-time",
            "udp-hi",
        ):
            card = run_check(fmt, running.port(fmt))
            bad = [r for r in card.results if r.verdict == "fail"]
            assert not bad, card.render()


def test_cli_prints_a_report_card_as_json(tmp_path: Path) -> None:
    port = free_port()
    with program("d_upper_server", port, tmp_path):
        wait_listening(port)
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "sockhub.cli.main",
                "lab",
                "check",
                "upper",
                f"127.0.0.1:{port}",
                "--json",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    card = json.loads(out.stdout)
    assert out.returncode == 0, out.stderr
    assert card["passed"] and card["results"][0] == {
        "probe": "basic",
        "verdict": "pass",
        "why": "answered 'hello' as a course client expects",
        "seen": "HELLO",
        "seen_bytes": 5,
    }
