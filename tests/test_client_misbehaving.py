"""Both clients against a server that breaks the protocol, stalls, never reads, or is not sockhub.

Every case runs on ``Client`` and on ``AsyncClient``: the failure each one reports is
the same class, raised from the call that was waiting, never a crash or a hang.
"""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import sockhub
from sockhub import (
    ConnectionBroken,
    ConnectionClosed,
    NotSockhubServer,
    RemoteProtocolError,
    RequestTimeout,
    SockhubError,
)
from sockhub.cli.main import main
from sockhub.client.datagram import udp_request
from sockhub.protocol.frames import encode_frame

from .client_support import Either, Peer, connect_either, scripted

KINDS = ["sync", "async"]


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def clients(kind: str) -> Iterator[Callable[..., Either]]:
    made: list[Either] = []

    def connect(server: str, **kwargs: Any) -> Either:
        either = connect_either(kind, server, **kwargs)
        made.append(either)
        return either

    yield connect
    for either in made:
        either.close()


def after_request(reply: Callable[[Any], bytes]) -> Callable[[Peer], None]:
    """A server that says hello, reads one request, sends what ``reply`` makes of it
    (nothing if the client sent none), then only reads."""

    def script(peer: Peer) -> None:
        peer.hello()
        frame = peer.request()
        if frame is not None:
            peer.send(reply(frame))
        peer.drain_until_closed()

    return script


def answer_with(**fields: Any) -> Callable[[Peer], None]:
    return after_request(lambda frame: peer_frame({"op": frame.header["op"], **fields}))


def opening_with(first: bytes) -> Callable[[Peer], None]:
    """A server that sends ``first`` in place of a hello, then only reads."""

    def script(peer: Peer) -> None:
        peer.send(first)
        peer.drain_until_closed()

    return script


def hello_only(peer: Peer) -> None:
    peer.hello()
    peer.drain_until_closed()


def peer_frame(header: dict[str, Any]) -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("!I", len(raw)) + raw


@pytest.mark.parametrize("re", [[1], {"id": 1}, "1", 1.5, True])
def test_a_reply_whose_re_is_not_an_integer_is_a_remote_protocol_error(
    clients: Callable[..., Either], re: Any
) -> None:
    with scripted(answer_with(re=re)) as server:
        c = clients(server.address)
        with pytest.raises(RemoteProtocolError, match="re"):
            c.call("echo", "x")
        with pytest.raises((RemoteProtocolError, ConnectionClosed)):
            c.call("echo", "again")  # the connection is over, and says why


def test_a_target_that_is_not_an_integer_is_a_remote_protocol_error(
    clients: Callable[..., Either],
) -> None:
    with scripted(answer_with(op="error", code="exec.no_such_run", target=[1])) as server:
        c = clients(server.address)
        with pytest.raises(RemoteProtocolError):
            c.call("echo", "x")


def test_a_reply_that_is_not_a_frame_is_a_remote_protocol_error(
    clients: Callable[..., Either],
) -> None:
    with scripted(after_request(lambda _: struct.pack("!I", 5) + b"[1,2]")) as server:
        c = clients(server.address)
        with pytest.raises(RemoteProtocolError) as info:
            c.call("echo", "x")
        assert not isinstance(info.value, sockhub.ProtocolError) or info.value.code != "internal"


def test_a_server_that_stops_mid_frame_times_the_request_out(
    clients: Callable[..., Either],
) -> None:
    mid_frame = struct.pack("!I", 40) + b'{"op": "ec'  # then nothing more
    with scripted(after_request(lambda _: mid_frame)) as server:
        c = clients(server.address, request_timeout=0.5)
        with pytest.raises(RequestTimeout):
            c.call("echo", "x")


def test_a_server_that_never_answers_times_the_request_out(
    clients: Callable[..., Either],
) -> None:
    with scripted(hello_only) as server:
        c = clients(server.address, request_timeout=0.3)
        with pytest.raises(RequestTimeout) as info:
            c.call("echo", "x")
        assert isinstance(info.value, TimeoutError)
        c.client.request_timeout = None  # a call may still choose its own deadline
        with pytest.raises(RequestTimeout):
            c.run(lambda client: _echo_within(client, 0.2))


def _echo_within(client: Any, seconds: float) -> Any:
    return client.request("echo", b"y", request_timeout=seconds)


def test_a_server_that_never_reads_breaks_a_write_after_its_deadline(
    clients: Callable[..., Either],
) -> None:
    def script(peer: Peer) -> None:
        peer.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        peer.hello()
        peer.never_read()

    with scripted(script) as server:
        c = clients(server.address, write_timeout=0.5)
        with pytest.raises(ConnectionBroken, match="did not read"):
            for _ in range(512):  # 512 MiB: far more than any socket buffer takes in
                c.send_and_drain("echo", b"x" * (1 << 20))


def test_a_reset_is_a_broken_connection_caused_by_the_os_error(
    clients: Callable[..., Either],
) -> None:
    def script(peer: Peer) -> None:
        peer.hello()
        peer.request()
        peer.reset()

    with scripted(script) as server:
        c = clients(server.address)
        with pytest.raises(ConnectionBroken) as info:
            c.call("echo", "x")
        assert isinstance(info.value.__cause__, OSError)


def test_closing_then_using_the_client_is_connection_closed(
    clients: Callable[..., Either],
) -> None:
    with scripted(hello_only) as server:
        c = clients(server.address)
        c.call("close")
        with pytest.raises(ConnectionClosed) as info:
            c.call("echo", "x")
        assert not isinstance(info.value, ConnectionBroken)


@pytest.mark.parametrize(
    ("hello", "match"),
    [
        ({"nonce": None}, "hello"),
        ({"proto": 2}, "protocol 2"),
        ({"op": "welcome"}, "hello"),
    ],
)
def test_a_bad_hello_is_a_remote_protocol_error(
    clients: Callable[..., Either], hello: dict[str, Any], match: str
) -> None:
    def script(peer: Peer) -> None:
        peer.hello(**hello)
        peer.drain_until_closed()

    with scripted(script) as server, pytest.raises(RemoteProtocolError, match=match):
        clients(server.address)


@pytest.mark.parametrize(
    ("first", "named"),
    [
        (b"hello from the echo server\n", "raw text"),
        (b"HTTP/1.1 400 Bad Request\r\n\r\n", "HTTP"),
        (struct.pack("<i", 30) + b'{"cmd": "list", "filesize": 0}', "course JSON"),
        (b"SSH-2.0-OpenSSH_9.6\r\n", "SSH"),
    ],
)
def test_a_server_that_speaks_another_protocol_is_named(
    clients: Callable[..., Either], first: bytes, named: str
) -> None:
    with scripted(opening_with(first)) as server:
        with pytest.raises(NotSockhubServer, match="not a sockhub server") as info:
            clients(server.address)
        assert named in str(info.value)
        assert isinstance(info.value, RemoteProtocolError)


def test_a_server_that_waits_for_the_client_is_not_sockhub(
    clients: Callable[..., Either],
) -> None:
    def script(peer: Peer) -> None:
        peer.drain_until_closed()  # a course server or an HTTP server: it waits for us

    with scripted(script) as server:
        with pytest.raises(NotSockhubServer, match=r"no hello within 0\.5 s.*speaks first"):
            clients(server.address, timeout=0.5)


def test_a_server_that_closes_before_its_hello_says_so(clients: Callable[..., Either]) -> None:
    def script(peer: Peer) -> None:
        peer.send(b"bye")
        peer.sock.shutdown(socket.SHUT_WR)
        peer.drain_until_closed()

    with scripted(script) as server:
        with pytest.raises(NotSockhubServer, match="raw text 'bye'"):
            clients(server.address)


def test_every_client_error_shares_one_root() -> None:
    for name in sockhub.__all__:
        obj = getattr(sockhub, name)
        if isinstance(obj, type) and issubclass(obj, BaseException):
            assert issubclass(obj, SockhubError), name
    assert issubclass(sockhub.ProtocolError, SockhubError)
    assert issubclass(RequestTimeout, TimeoutError)
    assert not issubclass(ConnectionBroken, ConnectionClosed)
    assert not issubclass(ConnectionClosed, ConnectionBroken)


@pytest.mark.parametrize(
    ("first", "said"),
    [
        (b"220 course file server ready\n", "raw text"),
        (encode_frame({"op": "hello", "proto": 1}), "valid hello"),
    ],
)
def test_the_cli_reports_a_foreign_server_with_exit_3(
    first: bytes, said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with scripted(opening_with(first)) as server:
        assert main(["echo", "-s", server.address, "x"]) == 3
    assert said in capsys.readouterr().err


def test_the_cli_reports_a_silent_server_with_exit_3(capsys: pytest.CaptureFixture[str]) -> None:
    with scripted(lambda peer: peer.drain_until_closed()) as server:
        assert main(["echo", "-s", server.address, "--timeout", "0.3", "x"]) == 3
    assert "speaks first" in capsys.readouterr().err


@pytest.fixture
def udp_peer() -> Iterator[Callable[[Callable[[bytes], bytes]], str]]:
    socks: list[socket.socket] = []

    def serve(answer: Callable[[bytes], bytes]) -> str:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        socks.append(sock)

        def loop() -> None:
            with contextlib.suppress(OSError):
                while True:
                    data, peer = sock.recvfrom(65_535)
                    sock.sendto(answer(data), peer)

        threading.Thread(target=loop, daemon=True).start()
        return f"127.0.0.1:{sock.getsockname()[1]}"

    yield serve
    for sock in socks:
        sock.close()


@pytest.mark.parametrize(
    ("answer", "named"),
    [
        (lambda data: data, "our own datagram back"),
        (lambda data: b"HELLO THERE\n", "raw text"),
        (lambda data: struct.pack("<i", 2) + b"{}", "little-endian"),
    ],
)
def test_a_foreign_udp_server_is_named(
    udp_peer: Callable[[Callable[[bytes], bytes]], str],
    answer: Callable[[bytes], bytes],
    named: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    address = udp_peer(answer)
    with pytest.raises(NotSockhubServer, match=named):
        udp_request(address, "echo", b"x", timeout=3)
    assert main(["echo", "--udp", "-s", address, "x"]) == 3
    assert "not a sockhub server" in capsys.readouterr().err
