"""The WebSocket bridge on real sockets, driven by python-websockets' client: the upgrade's
checks, the sockhub session behind it (hello, auth, requests, limits), ping and pong."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import http.client
import os
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from sockhub import Client
from sockhub.protocol.auth import client_mac, server_mac
from sockhub.protocol.frames import Decoder, Frame, encode_frame, encode_header

from .web_support import RunningWeb, running_web


@pytest.fixture
def web(tmp_path: Path) -> Iterator[RunningWeb]:
    with running_web(tmp_path / "data") as running:
        yield running


class WsPeer:
    """A sockhub client over the WebSocket: frames out as messages, a stream decoder in."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.decoder = Decoder(max_header=1 << 20, max_body=1 << 30)
        self.hello: dict[str, Any] = {}

    async def start(self) -> WsPeer:
        self.hello = (await self.frame()).header
        assert self.hello["op"] == "hello"
        return self

    async def frame(self) -> Frame:
        while True:
            event = self.decoder.next_event()
            if event is not None:
                assert isinstance(event, Frame)
                return event
            message = await self.ws.recv()
            assert isinstance(message, bytes), "sockhub.v1 sends binary messages only"
            self.decoder.receive_data(message)

    async def request(self, header: dict[str, Any], body: bytes = b"") -> Frame:
        await self.ws.send(encode_frame(header, body))
        return await self.frame()


def ws_connect(web: RunningWeb, **kwargs: Any) -> Any:
    kwargs.setdefault("origin", web.origin)
    kwargs.setdefault("subprotocols", ["sockhub.v1"])
    return connect(web.ws_url, **kwargs)


async def test_hello_and_echo_over_the_socket(web: RunningWeb) -> None:
    async with ws_connect(web) as ws:
        assert ws.subprotocol == "sockhub.v1"
        peer = await WsPeer(ws).start()
        assert "chat" in peer.hello["services"]
        reply = await peer.request({"op": "echo", "id": 1, "size": 5}, b"hello")
        assert reply.header["re"] == 1 and reply.body == b"hello"


async def test_wrong_origin_is_refused_before_the_upgrade(web: RunningWeb) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with ws_connect(web, origin="http://evil.example"):
            pass
    assert refused.value.response.status_code == 403
    with pytest.raises(InvalidStatus) as other_port:
        async with ws_connect(web, origin="http://127.0.0.1:1"):
            pass
    assert other_port.value.response.status_code == 403
    web.srv.wait_until(lambda: not web.srv.server.connections)  # type: ignore[union-attr]


async def test_allowed_origin_from_the_list(tmp_path: Path) -> None:
    with running_web(tmp_path / "data", web_origins="https://hub.example") as web:
        async with ws_connect(web, origin="https://hub.example") as ws:
            await WsPeer(ws).start()


async def test_foreign_host_and_missing_subprotocol_are_refused(web: RunningWeb) -> None:
    with pytest.raises(InvalidStatus) as host:
        async with ws_connect(web, additional_headers={"Host": "rebound.example"}):
            pass
    assert host.value.response.status_code in (400, 421)
    with pytest.raises(InvalidStatus) as proto:
        async with ws_connect(web, subprotocols=None):
            pass
    assert proto.value.response.status_code == 400


async def ws_login(peer: WsPeer, user: str, key: bytes) -> tuple[Frame, bytes]:
    """The HMAC login (PROTOCOL.md section 3): the reply, and the client nonce it used."""
    snonce = base64.b64decode(peer.hello["nonce"])
    cnonce = os.urandom(32)
    reply = await peer.request(
        {
            "op": "auth",
            "id": 1,
            "method": "hmac-sha256",
            "user": user,
            "cnonce": base64.b64encode(cnonce).decode(),
            "mac": client_mac(key, snonce, cnonce, user).hex(),
        }
    )
    return reply, cnonce


async def test_login_with_the_hmac_transcript(web: RunningWeb) -> None:
    key = web.srv.add_user("alice", ("chat", "files"))
    async with ws_connect(web) as ws:
        peer = await WsPeer(ws).start()
        snonce = base64.b64decode(peer.hello["nonce"])
        reply, cnonce = await ws_login(peer, "alice", key)
        assert reply.header["op"] == "ok" and "files" in reply.header["grants"]
        assert reply.header["mac"] == server_mac(key, snonce, cnonce, "alice").hex()
        listed = await peer.request({"op": "file.list", "id": 2, "path": ""})
        assert listed.header["op"] == "file.list"


async def test_anonymous_gets_the_anonymous_grants_only(web: RunningWeb) -> None:
    async with ws_connect(web) as ws:
        peer = await WsPeer(ws).start()
        reply = await peer.request({"op": "file.list", "id": 1, "path": ""})
        assert reply.header["code"] == "auth.required"


async def test_a_frame_may_span_messages_and_messages_may_hold_several(web: RunningWeb) -> None:
    async with ws_connect(web) as ws:
        peer = await WsPeer(ws).start()
        frame = encode_frame({"op": "echo", "id": 1, "size": 6}, b"abcdef")
        await ws.send(frame[:7])
        await ws.send(frame[7:])
        assert (await peer.frame()).body == b"abcdef"
        two = encode_frame({"op": "echo", "id": 2, "size": 1}, b"x") + encode_frame(
            {"op": "echo", "id": 3, "size": 1}, b"y"
        )
        await ws.send(two)
        assert [(await peer.frame()).body, (await peer.frame()).body] == [b"x", b"y"]


async def test_text_messages_and_bad_frames_close_the_socket(web: RunningWeb) -> None:
    async with ws_connect(web) as ws:
        await WsPeer(ws).start()
        await ws.send("not binary")
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1003
    async with ws_connect(web) as ws:
        peer = await WsPeer(ws).start()
        await ws.send(b"\x00\x00\x00\x02{]")
        error = await peer.frame()
        assert error.header["code"] == "frame.bad" and error.header["fatal"] is True
        with pytest.raises(ConnectionClosed):
            await ws.recv()


async def test_large_download_arrives_whole(web: RunningWeb) -> None:
    """A file body several MiB long leaves as messages of WebSocket frames, in order."""
    key = web.srv.add_user("alice", ("files",))
    data = os.urandom(3 * 1024 * 1024 + 17)
    async with ws_connect(web, max_size=None) as ws:
        peer = await WsPeer(ws).start()
        snonce = base64.b64decode(peer.hello["nonce"])
        cnonce = os.urandom(32)
        await peer.request(
            {
                "op": "auth",
                "id": 1,
                "method": "hmac-sha256",
                "user": "alice",
                "cnonce": base64.b64encode(cnonce).decode(),
                "mac": client_mac(key, snonce, cnonce, "alice").hex(),
            }
        )
        header = {"op": "file.put", "id": 2, "path": "big.bin", "total": len(data)}
        ready = await peer.request(header)
        assert ready.header["op"] == "file.ready", ready.header
        await ws.send(bytes(encode_header({"op": "file.data", "target": 2}, len(data))))
        for start in range(0, len(data), 1 << 20):
            await ws.send(data[start : start + (1 << 20)])
        done = await peer.request(
            {"op": "file.end", "target": 2, "sha256": hashlib.sha256(data).hexdigest()}
        )
        assert done.header["op"] == "ok", done.header
        got = await peer.request({"op": "file.get", "id": 3, "path": "big.bin"})
        assert got.header["op"] == "file.data" and got.body == data
        end = await peer.frame()
        assert end.header["sha256"] == hashlib.sha256(data).hexdigest()


async def test_server_pings_and_client_pings(web: RunningWeb) -> None:
    web.srv.call(lambda: setattr(web.web, "ping_interval", 0.05))
    async with ws_connect(web) as ws:
        await WsPeer(ws).start()
        latency = await ws.ping()
        await asyncio.wait_for(latency, 10)
        peers = web.srv.call(lambda: list(web.web.peers))
        assert len(peers) == 1
        opened = peers[0].opened
        # the client answers pings from its own loop: wait in a thread, not on that loop
        await asyncio.to_thread(web.srv.wait_until, lambda: peers[0].last_pong > opened)


async def test_connection_caps_count_websocket_sessions(tmp_path: Path) -> None:
    with running_web(tmp_path / "data", max_connections_per_ip=2) as web:
        async with ws_connect(web) as a, ws_connect(web) as b:
            await WsPeer(a).start()
            await WsPeer(b).start()
            async with ws_connect(web) as c:
                refused = await WsPeer(c).frame()
                assert refused.header["code"] == "limit.busy"
                with pytest.raises(ConnectionClosed):
                    await c.recv()


def test_a_reader_that_stops_is_cut_off(tmp_path: Path) -> None:
    """Backpressure: a WebSocket member that never reads does not pin server memory."""
    with running_web(tmp_path / "data", max_outbound=256 * 1024, outbound_soft=64 * 1024) as web:
        sock = socket.create_connection(("127.0.0.1", web.port), timeout=10)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall(
            (
                f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{web.port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: sockhub.v1\r\n"
                f"Origin: {web.origin}\r\n\r\n"
            ).encode()
        )
        answer = b""
        while b"\r\n\r\n" not in answer:  # a client waits for the 101 (RFC 6455 4.1)
            answer += sock.recv(1)
        assert answer.startswith(b"HTTP/1.1 101 ")
        join = encode_frame({"op": "chat.join", "id": 1, "room": "flood", "nick": "sleepy"})
        mask = b"\x00\x00\x00\x00"
        assert len(join) < 126  # one short masked client frame (the mask is zero)
        sock.sendall(bytes([0x82, 0x80 | len(join)]) + mask + join)
        server = web.srv.server
        assert server is not None
        web.srv.wait_until(lambda: any(c.kind == "ws" for c in server.connections))
        key = web.srv.add_user("talker", ("chat",))  # logged in: anonymous chat is rate-limited
        with Client.connect(web.srv.address, user="talker", key=key) as talker:
            talker.join("flood")
            web.srv.wait_until(lambda: len(server.connections) == 2)
            text = "x" * 16000
            for _ in range(2000):  # 32 MB at most; the cut-off comes far sooner
                talker.say("flood", text)
                if not web.srv.call(lambda: any(c.kind == "ws" for c in server.connections)):
                    break
            else:
                pytest.fail("the reader that never reads was never cut off")
        sock.close()


async def test_tls_follows_the_framed_port(tmp_path: Path) -> None:
    """With --tls the page and its socket are https/wss, on the same certificate."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with running_web(tmp_path / "data", tls=True) as web:
        assert web.url.startswith("https://")
        conn = http.client.HTTPSConnection("127.0.0.1", web.port, timeout=10, context=ctx)
        conn.request("GET", "/")
        response = conn.getresponse()
        assert response.status == 200
        assert f"wss://127.0.0.1:{web.port}" in (
            response.getheader("Content-Security-Policy") or ""
        )
        conn.close()
        url = f"wss://127.0.0.1:{web.port}/ws"
        origin = f"https://127.0.0.1:{web.port}"
        async with connect(url, ssl=ctx, origin=origin, subprotocols=["sockhub.v1"]) as ws:  # type: ignore[arg-type]
            peer = await WsPeer(ws).start()
            assert (await peer.request({"op": "echo", "id": 1, "size": 2}, b"ok")).body == b"ok"
        with pytest.raises(InvalidStatus):  # the http origin is another origin
            async with connect(
                url, ssl=ctx, origin=f"http://127.0.0.1:{web.port}", subprotocols=["sockhub.v1"]
            ):  # type: ignore[arg-type]
                pass


async def test_a_message_over_the_bound_closes_with_1009(tmp_path: Path) -> None:
    with running_web(tmp_path / "data", max_body=4096, max_header=1024) as web:
        async with ws_connect(web) as ws:
            await WsPeer(ws).start()
            await ws.send(b"\x00" * (1024 + 4 + 4096 + 1))
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
