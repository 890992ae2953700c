"""Hostile and broken clients against a real server: every limit at its edge, no crash."""

from __future__ import annotations

import os
import random
import socket
import struct
import threading
from pathlib import Path

import pytest

from sockhub import Client
from sockhub.protocol.errors import LimitBusy
from sockhub.protocol.frames import encode_frame

from .conftest import RawPeer, RunningServer, running_server


def fatal(peer: RawPeer) -> dict:
    """The fatal error the server sent, after which it must close."""
    header = peer.frame().header
    assert header["op"] == "error" and header["fatal"] is True, header
    assert peer.closed_by_server()
    return header


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (struct.pack("!I", 0), "frame.bad"),
        (struct.pack("!I", 65_537), "frame.too_large"),
        (struct.pack("!I", 4) + b"\xff\xfe{}", "frame.bad"),
        (struct.pack("!I", 8) + b"not json", "frame.bad"),
        (struct.pack("!I", 5) + b"[1,2]", "frame.bad"),
        (struct.pack("!I", 100) + b"[" * 50 + b"]" * 50, "frame.bad"),
        (encode_frame({"op": "echo", "id": 1, "size": "5"}), "frame.bad"),
        (encode_frame({"op": "echo", "id": 1, "size": -5}), "frame.bad"),
        (encode_frame({"op": "echo", "id": 1, "size": 1_048_577}), "frame.too_large"),
    ],
)
def test_malformed_frames_are_fatal(srv: RunningServer, data: bytes, code: str) -> None:
    peer = RawPeer(srv.port)
    peer.send(data)
    assert fatal(peer)["code"] == code
    with Client.connect(srv.address) as c:  # the server is fine
        assert c.ping() >= 0


def test_too_large_body_refused_before_it_is_sent(srv: RunningServer) -> None:
    peer = RawPeer(srv.port)
    peer.send(encode_frame({"op": "echo", "id": 1, "size": 10**12}))  # a terabyte, never sent
    assert fatal(peer)["code"] == "frame.too_large"


def test_frames_glued_after_bad_one_are_not_run(srv: RunningServer) -> None:
    peer = RawPeer(srv.port)
    peer.send(
        encode_frame({"op": "echo", "id": 1}, b"ok")
        + struct.pack("!I", 0)
        + encode_frame({"op": "echo", "id": 2}, b"never")
    )
    assert peer.frame().body == b"ok"
    assert fatal(peer)["code"] == "frame.bad"


def test_handshake_timeout_for_a_half_sent_frame(tmp_path: Path) -> None:
    with running_server(tmp_path, handshake_timeout=0.5) as server:
        peer = RawPeer(server.port)
        peer.request({"op": "ping", "id": 1})
        assert peer.frame().header["op"] == "pong"
        peer.send(encode_frame({"op": "ping", "id": 2})[:5])  # then silence
        error = fatal(peer)
        assert error["code"] == "limit.idle" and "stalled" in error["message"]
        silent = RawPeer(server.port)  # connects, never sends a frame
        assert fatal(silent)["code"] == "limit.idle"


def test_idle_timeout_and_ping_keeps_alive(tmp_path: Path) -> None:
    with running_server(tmp_path, idle_timeout=1.0, handshake_timeout=5.0) as server:
        peer = RawPeer(server.port)
        peer.request({"op": "ping", "id": 1})
        assert peer.frame().header["op"] == "pong"
        error = fatal(peer)
        assert error["code"] == "limit.idle" and "idle" in error["message"]
        assert Client.connect(server.address).hello.limits["idle_timeout"] == 1.0


def test_client_that_never_reads_is_cut_off(tmp_path: Path) -> None:
    with running_server(tmp_path, max_outbound=256 * 1024, send_timeout=1.0) as server:
        sock = socket.create_connection(("127.0.0.1", server.port))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        request = encode_frame({"op": "echo", "id": 1}, b"x" * 60_000)
        sent = 0
        sock.settimeout(10)
        try:  # pipeline echoes and never read: the server stops reading, then cuts us off
            for _ in range(2000):
                sock.sendall(request)
                sent += 1
        except OSError:
            pass
        sock.settimeout(10)
        data = b""
        try:
            while chunk := sock.recv(1 << 20):
                data += chunk
        except ConnectionResetError:
            pass
        assert sent < 2000  # the server stopped reading us long before we were done
        assert b"limit.slow_consumer" in data or len(data) < 2000 * 60_000
        with Client.connect(server.address) as c:
            assert c.ping() >= 0


def test_connection_caps(tmp_path: Path) -> None:
    with running_server(tmp_path, max_connections_per_ip=3, max_connections=5) as server:
        held = [RawPeer(server.port) for _ in range(3)]
        error = fatal(RawPeer(server.port, expect_hello=False))
        assert error["code"] == "limit.busy" and "your address" in error["message"]
        other = RawPeer(server.port, source="127.0.0.2")  # another address still gets in
        held[0].request({"op": "bye"})
        assert held[0].closed_by_server()
        server.wait_until(lambda: server.server.per_ip["127.0.0.1"] < 3)  # type: ignore[union-attr]
        with Client.connect(server.address, timeout=5) as c:  # a freed slot is reusable
            assert c.ping() >= 0
        for peer in (*held, other):
            peer.close()


def test_total_connection_cap(tmp_path: Path) -> None:
    with running_server(tmp_path, max_connections=2) as server:
        held = [RawPeer(server.port) for _ in range(2)]
        with pytest.raises(LimitBusy, match="too many connections"):
            Client.connect(server.address)
        for peer in held:
            peer.close()


@pytest.mark.slow
def test_1500_idle_connections_and_a_new_client_is_served(srv: RunningServer) -> None:
    # three loopback source addresses, 500 each, to stay under the per-address cap of 512
    peers = [
        socket.create_connection(
            ("127.0.0.1", srv.port), source_address=(f"127.0.0.{2 + i % 3}", 0)
        )
        for i in range(1500)
    ]
    try:
        with Client.connect(srv.address) as c:
            assert c.echo("served") == b"served"
        assert srv.call(lambda: len(srv.server.connections)) >= 1500  # type: ignore[union-attr]
    finally:
        for s in peers:
            s.close()


def rss_kib() -> int:
    with open(f"/proc/{os.getpid()}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.mark.slow
def test_random_bytes_from_hundreds_of_connections(srv: RunningServer) -> None:
    rng = random.Random(1234)

    def garbage(seed: int) -> None:
        r = random.Random(seed)
        for _ in range(3):
            try:
                with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
                    s.sendall(bytes(r.getrandbits(8) for _ in range(r.randint(1, 3000))))
                    s.shutdown(socket.SHUT_WR)
                    while s.recv(65536):
                        pass
            except OSError:
                pass

    before = rss_kib()
    for _round in range(2):
        threads = [threading.Thread(target=garbage, args=(rng.random(),)) for _ in range(200)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    with Client.connect(srv.address) as c:
        assert c.echo("alive") == b"alive"
    assert srv.call(lambda: len(srv.server.connections)) <= 1  # type: ignore[union-attr]
    assert rss_kib() - before < 64 * 1024  # bounded: no per-connection leftovers
