"""Hostile and broken peers on both sides of the lab: garbage, impossible lengths, bytes
that are neither UTF-8 nor GBK, half-closed sockets. Each gets a logged answer or a report
card, never a hang or a traceback."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import struct
from collections.abc import Iterator

import pytest

from sockhub.lab.check import check
from sockhub.lab.formats import FORMATS
from sockhub.lab.limits import LabLimits

from .lab_support import LabThread, ftp_header, lab

NEITHER = b"\xff\xfe\x80\x81\xfe\xff"  # not UTF-8, and not GBK either
TCP_LOCAL = [f.name for f in FORMATS if f.transport == "tcp" and not f.needs]
UDP = [f.name for f in FORMATS if f.transport == "udp"]


def framed(header: bytes) -> bytes:
    return struct.pack("i", len(header)) + header


@pytest.fixture(scope="module")
def local_lab() -> Iterator[LabThread]:
    with lab(limits=LabLimits(idle_timeout=5, challenge_timeout=5)) as running:
        yield running


@pytest.fixture
def errors(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.INFO)
    yield caplog
    crashed = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert not crashed, crashed


def until_closed(s: socket.socket) -> bytes:
    got = b""
    while chunk := s.recv(65536):
        got += chunk
    return got


@pytest.mark.parametrize("fmt", TCP_LOCAL)
@pytest.mark.parametrize("sent", [NEITHER, b"", b"\0" * 3000], ids=["neither", "nothing", "nuls"])
def test_listeners_survive_garbage_and_a_half_close(
    local_lab: LabThread, errors: pytest.LogCaptureFixture, fmt: str, sent: bytes
) -> None:
    with socket.create_connection(("127.0.0.1", local_lab.port(fmt)), timeout=10) as s:
        s.sendall(sent)
        s.shutdown(socket.SHUT_WR)  # half-closed: we read on, the lab must finish and close
        until_closed(s)
    with socket.create_connection(("127.0.0.1", local_lab.port(fmt)), timeout=10) as s:
        s.shutdown(socket.SHUT_WR)
        until_closed(s)  # and the listener still serves


@pytest.mark.parametrize("fmt", UDP)
@pytest.mark.parametrize("sent", [NEITHER, b"%", b"%Y\0", b"%0999999999Y", b"%" * 3000], ids=str)
def test_udp_listeners_answer_garbage_within_the_bound(
    local_lab: LabThread, errors: pytest.LogCaptureFixture, fmt: str, sent: bytes
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        u.settimeout(10)
        u.sendto(sent, ("127.0.0.1", local_lab.port(fmt)))
        reply = u.recvfrom(65535)[0]
    assert len(reply) <= min(3 * len(sent), 1024)


@pytest.mark.parametrize(
    ("sent", "logged"),
    [
        (struct.pack("i", -1), "announced a -1-byte header"),
        (struct.pack("i", 2**31 - 1), "announced a 2147483647-byte header"),
        (framed(b"[" * 60000), "not JSON"),
        (framed(NEITHER), "not JSON"),
        (framed(b"[1, 2]"), "not an object"),
        (struct.pack("i", 10) + b"{}", "stopped after 2 of 10 expected bytes"),
    ],
    ids=["negative", "huge", "deep", "neither", "list", "short"],
)
async def test_ftp_header_garbage_is_named(
    errors: pytest.LogCaptureFixture, sent: bytes, logged: str
) -> None:
    assert await ftp_header(sent) is None
    assert any(logged in r.getMessage() for r in errors.records)


def _header(**keys: object) -> bytes:
    return framed(json.dumps(keys).encode())


HOSTILE_SERVERS = [
    ("exec-json", _header(size=-3)),
    ("exec-json-ds", _header(data_size=True)),
    ("ftp-get", _header(data_all=-3, file_hex="x")),
    ("exec-json", framed(b"[" * 60000)),
    ("exec-len", struct.pack("i", -5)),
    ("exec-decimal", b"9" * 5000),
    ("exec-status", b"9" * 5000),
    ("decimal-text", b"9" * 5000),
    ("upper", NEITHER),
    ("chat", NEITHER),
    ("ftp-put", NEITHER),
]


@pytest.mark.parametrize(
    ("fmt", "reply"), HOSTILE_SERVERS, ids=[f"{f}-{n}" for n, (f, _) in enumerate(HOSTILE_SERVERS)]
)
async def test_check_gives_a_card_for_a_hostile_server(fmt: str, reply: bytes) -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.read(1)
            writer.write(reply)
            writer.write_eof()  # half-closed: what it said is all it says
            await reader.read(65536)
        except OSError:
            pass
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    async with server:
        port = server.sockets[0].getsockname()[1]
        card = await check(fmt, "127.0.0.1", port, timeout=0.5)
    assert not card.passed, card.render()  # named in the card, not raised


@pytest.mark.parametrize("fmt", ["upper", "greeting", "exec-raw"])
async def test_check_stops_reading_a_server_that_never_stops_talking(fmt: str) -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.read(1)
            while True:  # `yes`-style: never quiet, never closed
                writer.write(b"y\n" * 32768)
                await writer.drain()
        except OSError:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    async with server:
        port = server.sockets[0].getsockname()[1]
        card = await check(fmt, "127.0.0.1", port, timeout=0.5)
        server.close()
    assert card.results and all(r.verdict for r in card.results)  # it ended, with a card
