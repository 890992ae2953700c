"""The course's own clients, run as the notes write them, against ``sockhub lab serve``:
each gets what its own course server would give it (no sockhub server needed here)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from .lab_support import LabThread, lab, program


@pytest.fixture(scope="module")
def course_lab() -> Iterator[LabThread]:
    with lab() as running:
        yield running


CASES = [
    # program, format, stdin, what it prints
    ("a33_echo_client", "echo", None, "b'data'"),
    ("a351_upper_client", "upper", "hello\n\nworld\n", "WORLD"),
    ("c3_client", "upper", "abc\n", "data_from_server :>>>> ABC"),
    ("c4_client", "upper", "\nabc\n", "data_from_server :>>>> ABC"),
    ("d_upper_client", "upper", "abc\n", "Received  ABC"),
    ("b8_socketserver_client", "upper-once", None, "Received: HELLO"),
    ("b4_greeting_client", "greeting", None, "b'hi'"),
    ("c2_client", "greeting-addr", None, "data_from_server :>>>> 你好!我是服务端!('127.0.0.1'"),
    ("b7_hmac_client", "hmac-upper", "hello\n", "HELLO"),
    ("c8_client", "console", "hello\n", "data_from_server :>>>> lab: hello"),
    ("e_chat_client", "console", "你好\n", "lab: 你好"),
    ("e_decimal_client", "decimal-text", "x\n", "8月1日\uff0c安理会轮值主"),
    ("b4_udp_client", "udp-hi", None, "hi ('127.0.0.1'"),
    ("c6_udp_client", "udp-upper", "abc\n", "data_from_server :>>>> (b'ABC'"),
    ("c7_udp_client", "udp-upper", "\nabc\n", "data_from_server :>>>> ABC"),
    ("b_qq_client", "udp-qq", "egg\nhello\n", "hello"),
]


@pytest.mark.parametrize(("name", "fmt", "stdin", "want"), CASES, ids=[c[0] for c in CASES])
def test_course_client(
    course_lab: LabThread, tmp_path: Path, name: str, fmt: str, stdin: str | None, want: str
) -> None:
    with program(name, course_lab.port(fmt), tmp_path, stdin) as client:
        client.wait_for(want)


def test_time_client_never_blocks_even_on_an_empty_format(
    course_lab: LabThread, tmp_path: Path
) -> None:
    # B's time client prints nothing: it ends (EOFError at the third prompt) only if
    # both of its recv() calls, the second after an empty datagram, got an answer
    with program("b_time_client", course_lab.port("udp-time"), tmp_path, "%Y\n\n") as client:
        client.end_input()
        assert "EOFError" in client.finish()


def test_udp_exec_client_gets_its_two_datagrams_and_no_command_runs(
    course_lab: LabThread, tmp_path: Path
) -> None:
    with program("b5_udp_exec_client", course_lab.port("udp-exec"), tmp_path, "ls -l /\n") as c:
        c.end_input()
        out = c.finish()
    assert "error : the lab" in out  # the refusal, cut to 3x the 7-byte request
    assert "EOFError" in out  # it went on to its next prompt: both datagrams came
    assert "bin" not in out


def test_wrong_hmac_key_and_no_hmac_get_nothing(course_lab: LabThread, tmp_path: Path) -> None:
    port = course_lab.port("hmac-upper")
    with program("b7_wrongkey_client", port, tmp_path, "hello\n") as wrong:
        wrong.end_input()
        assert "HELLO" not in wrong.finish()
    with program("b7_plain_client", port, tmp_path, "hello\n") as plain:
        plain.end_input()
        # it reads the 32-byte challenge as its answer, as against the notes' server
        assert "HELLO" not in plain.finish()


@pytest.mark.parametrize(
    ("name", "sent"), [("b5_sticky1_client", b"helloegg"), ("e_sticky_client", b"hellokniom")]
)
def test_sticky_service_reports_each_recv(
    course_lab: LabThread, tmp_path: Path, caplog: pytest.LogCaptureFixture, name: str, sent: bytes
) -> None:
    caplog.set_level(logging.INFO, logger="sockhub.lab")
    with program(name, course_lab.port("sticky"), tmp_path) as client:
        client.finish()
    # the client sends and exits: the lab sees its close or its reset after the last recv
    course_lab.wait_logged(caplog, "closed the connection", "disconnected abruptly", "failed")
    seen = [r.getMessage() for r in caplog.records if "recv #" in r.getMessage()]
    assert seen and seen[0].split("recv #1: ")[1]
    received = b"".join(eval(line.split("bytes ", 1)[1]) for line in seen)
    assert received == sent
