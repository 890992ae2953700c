"""No amplification over UDP: a reply is never larger than the datagram that caused it.

A datagram's source can be forged, so whoever gets the reply may not have asked for it;
these tests measure reply and request sizes on real loopback sockets, at the bound.
"""

from __future__ import annotations

import json
import socket
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from sockhub.cli.main import main
from sockhub.protocol.frames import decode_datagram, encode_frame, pad_frame
from sockhub.services.classic import ClassicService

from .conftest import RunningServer, running_server
from .test_classic_tools import PINNED, ZERO_PORTS

WIDE_TIME = "%02040Y" * 30  # 210 characters of format make 61,200 of text
MARKER = 999_999


@contextmanager
def udp_client(port: int, host: str = "127.0.0.1", source: str = "127.0.0.1") -> Iterator[Any]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((source, 0))
        sock.connect((host, port))
        sock.settimeout(10)
        yield sock


def ask(sock: socket.socket, request: bytes) -> bytes | None:
    """The reply to ``request``, or None when it got none.

    UDP on loopback from one socket is answered in order, so a plain echo sent right
    after it tells "no reply" apart from "not yet" without waiting on a clock.
    """
    sock.send(request)
    sock.send(encode_frame({"op": "echo", "id": MARKER}))
    first = sock.recv(65_535)
    if header_of(first).get("re") == MARKER:
        return None
    assert header_of(sock.recv(65_535)).get("re") == MARKER
    return first


def header_of(datagram: bytes) -> dict[str, Any]:
    return decode_datagram(datagram, max_body=65_507).header


def test_no_reply_is_larger_than_its_request(srv: RunningServer) -> None:
    """Every op and error the UDP port answers, bare and padded to many sizes."""
    requests = [
        encode_frame({"op": "time", "id": 1, "format": WIDE_TIME}),
        encode_frame({"op": "time", "id": 1, "format": "%02040Y"}),
        encode_frame({"op": "time", "id": 1}),
        encode_frame({"op": "time", "id": 1, "format": "%Q" + "%" * 250}),  # bad.request
        encode_frame({"op": "echo", "id": 1, "upper": True}, "ΐ".encode() * 500),
        encode_frame({"op": "nope", "id": 1}),
        encode_frame({"op": "x" * 200, "id": 1}),
        encode_frame({"op": "auth", "id": 1}),
    ]
    answered = 0
    with udp_client(srv.port) as sock:
        for request in requests:
            for size in (0, 60, 80, 100, 200, 600, 3_000, 65_507):
                padded = pad_frame(request, size)
                reply = ask(sock, padded)
                if reply is not None:
                    answered += 1
                    assert len(reply) <= len(padded), (header_of(reply), len(padded))
        wide = ask(sock, pad_frame(requests[0], 65_507))  # a request as large as it gets
        assert wide is not None and len(header_of(wide)["text"]) == 61_200
    assert answered > 30


def test_a_padded_request_gets_the_whole_reply_at_the_bound(srv: RunningServer) -> None:
    """echo with upper of 'ΐ' (2 UTF-8 bytes, 6 upper-cased): a reply that needs exactly
    the request's size is sent whole; one byte less and it is refused in a short error."""
    body = "ΐ".encode() * 100
    request = encode_frame({"op": "echo", "id": 5, "upper": True}, body)
    with udp_client(srv.port) as sock:
        refused = ask(sock, pad_frame(request, 200))
        assert refused is not None and len(refused) <= 200
        error = header_of(refused)
        assert (error["op"], error["code"], error["re"], error["fatal"]) == (
            "error",
            "frame.too_large",
            5,
            False,
        )
        need = error["need"]
        whole = ask(sock, pad_frame(request, need))
        assert whole is not None and len(whole) == need
        assert decode_datagram(whole).body == "ΐ".upper().encode() * 100
        short = ask(sock, pad_frame(request, need - 1))
        assert short is not None and header_of(short)["code"] == "frame.too_large"


def test_an_error_is_shortened_to_fit_or_not_sent(srv: RunningServer) -> None:
    request = encode_frame({"op": "nope", "id": 3})
    with udp_client(srv.port) as sock:
        full = ask(sock, pad_frame(request, 1_000))
        assert full is not None
        message = header_of(full)["message"]
        assert header_of(full)["code"] == "op.unknown" and message
        smallest = len(full) - len(json.dumps(message)) + len('""')
        bare = ask(sock, pad_frame(request, smallest))
        assert bare is not None and len(bare) == smallest
        assert header_of(bare)["code"] == "op.unknown" and header_of(bare)["message"] == ""
        clipped = ask(sock, pad_frame(request, smallest + 5))
        assert clipped is not None and header_of(clipped)["message"] == message[:5]
        assert ask(sock, pad_frame(request, smallest - 1)) is None
        assert ask(sock, request) is None  # 21 bytes: no error fits


def test_time_reflects_nothing_wider_than_the_request(srv: RunningServer) -> None:
    """Before: 40 bytes asking for %02040Y got ~2 KB back (a ~250x amplifier)."""
    request = encode_frame({"op": "time", "id": 1, "format": "%02040Y", "utc": True})
    with udp_client(srv.port) as sock:
        assert ask(sock, request) is None
        refused = ask(sock, pad_frame(request, 128))
        assert refused is not None and len(refused) <= 128
        need = header_of(refused)["need"]
        assert need > 2_040
        reply = ask(sock, pad_frame(request, need + 64))
        assert reply is not None and len(reply) <= need + 64
        text = header_of(reply)["text"]
        assert len(text) == 2_040 and text.isdigit()


def test_cli_pads_and_asks_again_for_a_wide_reply(srv: RunningServer, capsys: Any) -> None:
    assert main(["time", "--udp", "-s", srv.address, "--utc", "-f", "%Y"]) == 0
    assert main(["time", "--udp", "-s", srv.address, "--utc", "-f", "%02040Y"]) == 0
    assert main(["echo", "--udp", "-s", srv.address, "--upper", "ΐ" * 400]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out[1]) == 2_040 and out[1].endswith(out[0])
    assert out[2] == "ΐ".upper() * 400


# the classic services' loop guard -----------------------------------------------------


@pytest.fixture
def classic(tmp_path: Path) -> Iterator[ClassicService]:
    service = ClassicService(clock=lambda: PINNED)
    limits = {"udp_burst": 1, "udp_replies_per_sec": 0.001}
    with running_server(
        tmp_path / "data", services=[service], classic=True, **ZERO_PORTS, **limits
    ):
        yield service


def test_classic_ignores_our_own_ports_from_any_address(classic: ClassicService) -> None:
    """Two sockhub servers with the same classic ports must not be made to talk forever:
    a datagram from one of our classic ports (here from another loopback address) is
    forged, and is not answered."""
    echo = classic.port("echo", "udp")
    for n, service in enumerate(("echo", "daytime", "time", "sntp"), start=2):
        source = f"127.0.0.{n}"  # each its own budget of one reply
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as forged:
            forged.bind((source, classic.port(service, "udp")))
            forged.sendto(b"loop?", ("127.0.0.1", echo))
            with udp_client(echo, source=source) as honest:
                honest.send(b"after")  # answered only if the forged one was not
                assert honest.recv(100) == b"after"
            forged.setblocking(False)
            with pytest.raises(BlockingIOError):  # a reply would have come before "after"
                forged.recv(100)


def udp_packet(src_port: int, dst_port: int, payload: bytes) -> bytes:
    """A UDP header and payload, checksum 0 (none, allowed over IPv4)."""
    return struct.pack("!HHHH", src_port, dst_port, 8 + len(payload), 0) + payload


@pytest.mark.skipif(not hasattr(socket, "SOCK_RAW"), reason="no raw sockets")
def test_a_datagram_forged_from_our_own_port_does_not_loop(classic: ClassicService) -> None:
    """The classic echo's own address as the source: answering would send it to itself,
    forever. With a budget of one reply per source, a loop would use it up and the
    honest request after it (same address, 127.0.0.1) would go unanswered."""
    try:
        raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP)
    except PermissionError:
        pytest.skip("forging a source port needs a raw socket (root)")
    echo, daytime = classic.port("echo", "udp"), classic.port("daytime", "udp")
    with raw:
        raw.sendto(udp_packet(echo, echo, b"loop?"), ("127.0.0.1", 0))
        raw.sendto(udp_packet(daytime, echo, b"loop?"), ("127.0.0.1", 0))
        with udp_client(echo) as honest:
            honest.send(b"after")
            assert honest.recv(100) == b"after"
