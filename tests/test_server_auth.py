"""hmac-sha256 mutual authentication (section 3) against a real server, and a fake one."""

from __future__ import annotations

import base64
import socket
import threading
from collections.abc import Iterable
from pathlib import Path

import pytest

from sockhub import AsyncClient, Client
from sockhub.protocol import auth
from sockhub.protocol.errors import (
    AuthFailed,
    AuthRequired,
    BadRequest,
    LimitRate,
    error_from_header,
)
from sockhub.protocol.frames import Decoder, Frame, encode_frame
from sockhub.server import OpSpec, Request, Service
from sockhub.server.config import load_config
from sockhub.services import default_services

from .conftest import RawPeer, RunningServer, running_server


def auth_frame(peer: RawPeer, user: str, key: bytes, rid: int = 1) -> bytes:
    snonce = base64.b64decode(peer.hello.header["nonce"])
    cnonce = auth.new_nonce()
    mac = auth.client_mac(key, snonce, cnonce, user).hex()
    return encode_frame(
        {
            "op": "auth",
            "id": rid,
            "method": "hmac-sha256",
            "user": user,
            "cnonce": base64.b64encode(cnonce).decode(),
            "mac": mac,
        }
    )


def test_transcript_binds_direction_and_nonces() -> None:
    key, s, c = auth.new_key(), auth.new_nonce(), auth.new_nonce()
    assert auth.client_mac(key, s, c, "a") != auth.server_mac(key, s, c, "a")
    assert auth.client_mac(key, s, c, "a") != auth.client_mac(key, c, s, "a")
    assert auth.verify(auth.client_mac(key, s, c, "a"), auth.client_mac(key, s, c, "a").hex())
    assert not auth.verify(auth.client_mac(key, s, c, "a"), "zz" * 32)
    assert not auth.verify(auth.client_mac(key, s, c, "a"), 5)


def test_login_both_clients_and_grants(srv: RunningServer) -> None:
    key = srv.add_user("alice", ("files",))
    with Client.connect(srv.address, user="alice", key=key) as c:
        assert c.user == "alice"
        assert set(c.grants) == {"echo", "time", "chat", "files"}
        assert c.echo("x") == b"x"

    async def run() -> None:
        async with await AsyncClient.connect(srv.address, user="alice", key=key) as c:
            assert "files" in c.grants

    import asyncio

    asyncio.run(run())


def test_wrong_key_and_unknown_user_get_the_same_fatal_answer(srv: RunningServer) -> None:
    srv.add_user("bob")
    answers = []
    for user in ("bob", "nobody"):
        peer = RawPeer(srv.port)
        peer.send(auth_frame(peer, user, auth.new_key()))
        error = peer.frame().header
        answers.append((error["code"], error["message"], error["fatal"], error["re"]))
        assert peer.closed_by_server()
    assert answers[0] == answers[1] == ("auth.failed", "authentication failed", True, 1)


def test_replayed_auth_from_another_connection_fails(srv: RunningServer) -> None:
    key = srv.add_user("carol")
    first = RawPeer(srv.port)
    frame = auth_frame(first, "carol", key)
    first.send(frame)
    assert first.frame().header["op"] == "ok"
    second = RawPeer(srv.port)
    second.send(frame)  # same mac, but this connection has a different server nonce
    assert second.frame().header["code"] == "auth.failed"


def test_server_mac_proves_the_server_knows_the_key(srv: RunningServer) -> None:
    key = srv.add_user("dave")
    peer = RawPeer(srv.port)
    snonce = base64.b64decode(peer.hello.header["nonce"])
    cnonce = auth.new_nonce()
    peer.request(
        {
            "op": "auth",
            "id": 1,
            "method": "hmac-sha256",
            "user": "dave",
            "cnonce": base64.b64encode(cnonce).decode(),
            "mac": auth.client_mac(key, snonce, cnonce, "dave").hex(),
        }
    )
    reply = peer.frame().header
    assert reply["mac"] == auth.server_mac(key, snonce, cnonce, "dave").hex()
    peer.send(auth_frame(peer, "dave", key, rid=2))
    assert peer.frame().header["code"] == "bad.request"  # already authenticated


def fake_server(reply_mac: str) -> tuple[socket.socket, threading.Thread]:
    """A server that greets properly but answers auth with ``reply_mac``: an impostor."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            nonce = base64.b64encode(auth.new_nonce()).decode()
            conn.sendall(
                encode_frame(
                    {
                        "op": "hello",
                        "proto": 1,
                        "nonce": nonce,
                        "auth": ["hmac-sha256"],
                        "services": [],
                    }
                )
            )
            decoder = Decoder()
            while True:
                data = conn.recv(65536)
                if not data:
                    return
                decoder.receive_data(data)
                event = decoder.next_event()
                if isinstance(event, Frame) and event.header["op"] == "auth":
                    conn.sendall(
                        encode_frame(
                            {
                                "op": "ok",
                                "re": event.header["id"],
                                "user": "x",
                                "grants": [],
                                "mac": reply_mac,
                            }
                        )
                    )

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return listener, thread


def test_client_refuses_a_server_that_cannot_prove_the_key() -> None:
    listener, thread = fake_server("00" * 32)
    port = listener.getsockname()[1]
    with pytest.raises(AuthFailed, match="could not prove"):
        Client.connect(f"127.0.0.1:{port}", user="x", key=auth.new_key())
    thread.join(5)
    listener.close()


def test_failed_auth_rate_limit_per_address(tmp_path: Path) -> None:
    with running_server(tmp_path, auth_failures_per_ip=3) as server:
        key = server.add_user("erin")
        for _ in range(3):
            with pytest.raises(AuthFailed):
                Client.connect(server.address, user="erin", key=auth.new_key())
        with pytest.raises(LimitRate) as info:  # even the right key, until the bucket refills
            Client.connect(server.address, user="erin", key=key)
        assert info.value.fatal
        with Client.connect(server.address) as anonymous:  # anonymous use is unaffected
            assert anonymous.ping() >= 0


class GrantService(Service):
    name = "guarded"

    def ops(self) -> Iterable[OpSpec]:
        return (OpSpec("guarded", self._op, "guarded", grant="files"),)

    def _op(self, req: Request) -> None:
        req.ok(user=req.session.user)


def test_grants_gate_ops(tmp_path: Path) -> None:
    config = load_config({"data": tmp_path}, env={})
    with running_server(tmp_path, services=[*default_services(config), GrantService()]) as server:
        plain = server.add_user("frank")
        granted = server.add_user("gina", ("files",))
        with Client.connect(server.address) as c:
            with pytest.raises(AuthRequired, match="log in"):
                c.request("guarded")
        with Client.connect(server.address, user="frank", key=plain) as c:
            with pytest.raises(AuthRequired, match="frank lacks"):
                c.request("guarded")
        with Client.connect(server.address, user="gina", key=granted) as c:
            assert c.request("guarded").header["user"] == "gina"


def test_anonymous_grants_are_configuration(tmp_path: Path) -> None:
    with running_server(tmp_path, anonymous_grants=("time",)) as server:
        with Client.connect(server.address) as c:
            assert c.time().text
            with pytest.raises(AuthRequired):
                c.echo("x")


@pytest.mark.parametrize(
    "fields",
    [
        {"method": "md5"},
        {"cnonce": "short"},
        {"cnonce": 5},
        {"user": 7},
        {"mac": None},
    ],
)
def test_malformed_auth_is_bad_request(srv: RunningServer, fields: dict) -> None:
    peer = RawPeer(srv.port)
    base = {
        "op": "auth",
        "id": 1,
        "method": "hmac-sha256",
        "user": "x",
        "cnonce": base64.b64encode(bytes(32)).decode(),
        "mac": "00" * 32,
    }
    peer.request({**base, **fields})
    error = peer.frame().header
    assert error["code"] == "bad.request", error
    assert isinstance(error_from_header(error), BadRequest)


def hostile_server(frames: list[bytes]) -> tuple[socket.socket, threading.Thread]:
    """A server that greets properly, then sends ``frames`` whatever the client asks."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            nonce = base64.b64encode(auth.new_nonce()).decode()
            hello = {"op": "hello", "proto": 1, "nonce": nonce, "auth": [], "services": []}
            conn.sendall(encode_frame(hello) + b"".join(frames))
            while conn.recv(65536):
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return listener, thread


@pytest.mark.parametrize("re", [[1], {"a": 1}, "1", 1.5])
def test_client_survives_a_reply_with_a_bad_re(re: object) -> None:
    listener, thread = hostile_server([encode_frame({"op": "pong", "re": re})])
    port = listener.getsockname()[1]
    from sockhub import RemoteProtocolError

    with pytest.raises(
        RemoteProtocolError, match="non-integer"
    ):  # an error, not a crash of the client
        with Client.connect(f"127.0.0.1:{port}") as c:
            c.ping()
    listener.close()
    thread.join(5)
