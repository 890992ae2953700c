"""Connection lifecycle over a real loopback server: hello, dispatch, errors, pipelining, bye."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from pathlib import Path

import pytest

from sockhub import AsyncClient, Client
from sockhub.protocol.errors import BadRequest, OpUnknown
from sockhub.protocol.frames import encode_frame
from sockhub.server import OpSpec, Request, Service
from sockhub.server.config import load_config
from sockhub.services import default_services

from .conftest import RawPeer, RunningServer, running_server


class GateService(Service):
    """An op that answers only when the test opens the gate: requests that stay in flight."""

    name = "gate"

    def __init__(self) -> None:
        self.gate: asyncio.Event | None = None

    async def start(self, ctx: object) -> None:  # type: ignore[override]
        self.gate = asyncio.Event()

    def ops(self) -> Iterable[OpSpec]:
        return (OpSpec("gate", self._wait, "gate"), OpSpec("boom", self._boom, "gate"))

    async def _wait(self, req: Request) -> None:
        assert self.gate is not None
        await self.gate.wait()
        req.ok(n=req.header.get("n"))

    def _boom(self, req: Request) -> None:
        raise RuntimeError("secret detail that must not reach the client")


@pytest.fixture
def gated(tmp_path: Path):  # type: ignore[no-untyped-def]
    svc = GateService()
    config = load_config({"data": tmp_path}, env={})
    with running_server(tmp_path, services=[*default_services(config), svc]) as server:
        yield server, svc


def test_hello_advertises_services_and_limits(srv: RunningServer) -> None:
    peer = RawPeer(srv.port)
    hello = peer.hello.header
    assert hello["op"] == "hello" and hello["proto"] == 1
    assert hello["auth"] == ["hmac-sha256"]
    assert {"echo", "time"} <= set(hello["services"])
    assert hello["limits"]["max_header"] == 65_536 and hello["limits"]["max_body"] == 1_048_576
    assert len(hello["nonce"]) == 44  # base64 of 32 bytes
    assert RawPeer(srv.port).hello.header["nonce"] != hello["nonce"]


def test_ping_pong_and_server_ping_reply(srv: RunningServer) -> None:
    peer = RawPeer(srv.port)
    peer.request({"op": "ping", "id": 5})
    assert peer.frame().header == {"op": "pong", "re": 5}


def test_unknown_op_with_and_without_id(srv: RunningServer) -> None:
    peer = RawPeer(srv.port)
    peer.request({"op": "nope"})  # no id: ignored
    peer.request({"op": "nope", "id": 3, "extra": {"unknown": "keys are ignored"}})
    error = peer.frame().header
    assert error["code"] == "op.unknown" and error["re"] == 3 and error["fatal"] is False
    peer.request({"op": "ping", "id": 4})
    assert peer.frame().header["re"] == 4  # still open


@pytest.mark.parametrize(
    ("header", "field"),
    [
        ({"id": 1}, "op"),
        ({"op": 5, "id": 1}, "op"),
        ({"op": ["echo"], "id": 1}, "op"),  # unhashable: must not break the body policy
        ({"op": {"echo": 1}, "id": 1}, "op"),
        ({"op": "echo", "id": 1, "upper": "yes"}, "upper"),
        ({"op": "time", "id": 1, "format": 7}, "format"),
        ({"op": "time", "id": 1, "format": "x" * 257}, "format"),
        ({"op": "time", "id": 1, "utc": 1}, "utc"),
        ({"op": "echo", "id": 1, "upper": True, "size": 1}, None),
    ],
)
def test_bad_fields_are_non_fatal_bad_request(
    srv: RunningServer, header: dict, field: str | None
) -> None:
    peer = RawPeer(srv.port)
    peer.send(encode_frame(header, b"\xff" if header.get("size") else b"")[:None])
    error = peer.frame().header
    assert error["code"] == "bad.request" and error["fatal"] is False and error["re"] == 1
    if field:
        assert field in error["message"]
    peer.request({"op": "ping", "id": 9})
    assert peer.frame().header["re"] == 9


@pytest.mark.parametrize("bad_id", [0, -1, 2**53, 1.5, "1", True])
def test_bad_id_is_bad_request_without_re(srv: RunningServer, bad_id: object) -> None:
    peer = RawPeer(srv.port)
    peer.request({"op": "ping", "id": bad_id})
    error = peer.frame().header
    assert error["code"] == "bad.request" and "re" not in error and "id" in error["message"]


def test_internal_error_hides_details(gated) -> None:  # type: ignore[no-untyped-def]
    server, _ = gated
    with Client.connect(server.address) as c:
        with pytest.raises(Exception) as info:
            c.request("boom")
        assert info.value.code == "internal"  # type: ignore[attr-defined]
        assert "secret" not in str(info.value)
        assert c.echo("still fine") == b"still fine"


def test_id_in_flight_may_not_be_reused(gated) -> None:  # type: ignore[no-untyped-def]
    server, svc = gated
    peer = RawPeer(server.port)
    peer.request({"op": "gate", "id": 1, "n": 1})
    peer.request({"op": "gate", "id": 1, "n": 2})
    error = peer.frame().header
    assert error["code"] == "bad.request" and error["re"] == 1 and "in flight" in error["message"]
    server.call(svc.gate.set)
    assert peer.frame().header == {"op": "ok", "re": 1, "n": 1}
    peer.request({"op": "gate", "id": 1, "n": 3})  # free again once answered
    assert peer.frame().header == {"op": "ok", "re": 1, "n": 3}


async def test_replies_interleave_and_match_by_re(gated) -> None:  # type: ignore[no-untyped-def]
    server, svc = gated
    async with await AsyncClient.connect(server.address) as c:
        slow = c.request("gate", n=1)
        fast = [c.request("echo", str(i).encode()) for i in range(50)]
        assert [(await f).body for f in fast] == [str(i).encode() for i in range(50)]
        assert not slow.done()
        server.call(svc.gate.set)
        assert (await slow).header["n"] == 1


def test_bye_flushes_what_is_owed_then_closes(gated) -> None:  # type: ignore[no-untyped-def]
    server, svc = gated
    peer = RawPeer(server.port)
    peer.send(
        encode_frame({"op": "gate", "id": 1, "n": 1})
        + encode_frame({"op": "echo", "id": 2}, b"x")
        + encode_frame({"op": "bye"})
        + encode_frame({"op": "echo", "id": 3}, b"after bye is not read")
    )
    assert peer.frame().header["re"] == 2
    server.call(svc.gate.set)
    assert peer.frame().header == {"op": "ok", "re": 1, "n": 1}
    assert peer.closed_by_server()


def test_half_close_still_gets_answers(srv: RunningServer) -> None:
    peer = RawPeer(srv.port)
    peer.send(encode_frame({"op": "echo", "id": 1}, b"a") + encode_frame({"op": "ping", "id": 2}))
    peer.sock.shutdown(1)  # SHUT_WR: like `nc -N`
    assert peer.frame().body == b"a"
    assert peer.frame().header["op"] == "pong"
    assert peer.closed_by_server()


def test_request_without_id_gets_no_reply_but_errors_are_sent(srv: RunningServer) -> None:
    peer = RawPeer(srv.port)
    peer.request({"op": "echo"}, b"x")
    peer.request({"op": "echo", "upper": True}, b"\xff")
    error = peer.frame().header
    assert error["code"] == "bad.request" and "re" not in error


def test_error_reply_raises_code_on_both_clients(srv: RunningServer) -> None:
    with Client.connect(srv.address) as c:
        with pytest.raises(OpUnknown):
            c.request("no.such.op")
        with pytest.raises(BadRequest):
            c.echo(b"\xff", upper=True)

    async def run() -> None:
        async with await AsyncClient.connect(srv.address) as c:
            with pytest.raises(OpUnknown) as info:
                await c.request("no.such.op")
            assert info.value.code == "op.unknown" and info.value.fatal is False

    asyncio.run(run())


def test_upper_echo_and_body_limit_exact(srv: RunningServer) -> None:
    with Client.connect(srv.address) as c:
        assert c.echo("straße", upper=True) == b"STRASSE"
        big = b"x" * 1_048_576
        assert c.echo(big) == big
