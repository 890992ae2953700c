"""The same protocol over UDP, a UNIX-domain socket and TLS (with pinning)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from sockhub import AsyncClient, Client
from sockhub.client import TlsPinError
from sockhub.protocol.frames import decode_datagram, encode_frame, pad_frame

from .conftest import RunningServer, running_server


def udp_exchange(port: int, datagram: bytes, timeout: float = 2.0) -> bytes | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(datagram, ("127.0.0.1", port))
        try:
            return s.recv(65_535)
        except TimeoutError:
            return None


def test_udp_echo_time_and_unknown_op(srv: RunningServer) -> None:
    reply = udp_exchange(srv.port, encode_frame({"op": "echo", "id": 1, "upper": True}, b"hi"))
    assert reply is not None and decode_datagram(reply).body == b"HI"
    time = pad_frame(encode_frame({"op": "time", "id": 2, "utc": True}), 200)  # room to answer
    reply = udp_exchange(srv.port, time)
    assert reply is not None and decode_datagram(reply).header["tz"] == "UTC"
    for op in ("auth", "ping", "nope"):  # only echo and time are served over UDP
        reply = udp_exchange(srv.port, pad_frame(encode_frame({"op": op, "id": 3}), 200))
        assert reply is not None and decode_datagram(reply).header["code"] == "op.unknown"


def test_udp_garbage_is_dropped_silently(srv: RunningServer) -> None:
    frame = encode_frame({"op": "echo", "id": 1}, b"x")
    for bad in (b"", b"\x00\x00\x00\x00", frame[:-1], frame + b"extra", b"\xff" * 100):
        assert udp_exchange(srv.port, bad, timeout=0.2) is None
    assert udp_exchange(srv.port, frame) is not None  # and the endpoint still answers


def test_udp_reply_rate_limit_per_source(tmp_path: Path) -> None:
    with running_server(tmp_path, udp_replies_per_sec=0.001, udp_burst=5) as server:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(0.3)
            for i in range(20):
                s.sendto(
                    encode_frame({"op": "echo", "id": i + 1}, b"amplify?"),
                    ("127.0.0.1", server.port),
                )
            answered = 0
            try:
                while s.recv(65_535):
                    answered += 1
            except TimeoutError:
                pass
        assert answered == 5


def test_cli_udp_echo(srv: RunningServer) -> None:
    from sockhub.cli.main import main

    assert main(["echo", "--udp", "-s", srv.address, "via", "udp"]) == 0


def test_unix_socket(tmp_path: Path) -> None:
    path = tmp_path / "hub.sock"
    with running_server(tmp_path / "data", unix=path), Client.connect(f"unix:{path}") as c:
        assert c.echo("over unix") == b"over unix"
    assert not path.exists()  # removed on shutdown


def test_unix_socket_replaces_a_stale_one(tmp_path: Path) -> None:
    path = tmp_path / "hub.sock"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))
    stale.close()
    with running_server(tmp_path / "data", unix=path), Client.connect(str(path)) as c:
        assert c.ping() >= 0


async def test_tls_self_signed_pin_on_first_use(tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    with running_server(tmp_path / "data", tls=True) as server:
        fingerprint = server.server.listening.tls_fingerprint  # type: ignore[union-attr]
        assert (tmp_path / "data" / "tls" / "key.pem").stat().st_mode & 0o777 == 0o600
        first = Client.connect(server.address, tls=True, known_hosts=str(known))
        assert first.pinned_now and first.fingerprint == fingerprint
        assert first.echo("secret") == b"secret"
        first.close()
        async with await AsyncClient.connect(server.address, tls=True, known_hosts=str(known)) as c:
            assert not c.pinned_now and await c.echo("again") == b"again"
        with Client.connect(server.address, fingerprint=fingerprint) as c:  # explicit pin
            assert c.ping() >= 0
        with pytest.raises(TlsPinError, match="not the"):
            Client.connect(server.address, fingerprint="00:" * 31 + "00")
    # a new certificate on the same address is refused, like ssh
    import shutil

    shutil.rmtree(tmp_path / "data" / "tls")
    with running_server(tmp_path / "data", tls=True, port=server.port) as server:
        with pytest.raises(TlsPinError, match="CHANGED"):
            Client.connect(server.address, tls=True, known_hosts=str(known))


def test_plain_client_against_tls_server_fails_cleanly(tmp_path: Path) -> None:
    from sockhub import NotSockhubServer

    with running_server(tmp_path, tls=True) as server:
        with pytest.raises(NotSockhubServer, match=r"no hello within 1 s|TLS"):
            Client.connect(server.address, timeout=1)
        with Client.connect(
            server.address, fingerprint=server.server.listening.tls_fingerprint
        ) as c:  # type: ignore[union-attr]
            assert c.ping() >= 0
