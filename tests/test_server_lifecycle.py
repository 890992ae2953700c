"""Session lifecycle: counted pauses, clocks that stop while the server pauses, the
sweeper that survives a failing check, shutdown with members, foreign bytes, and TLS
connections counted before their handshake."""

from __future__ import annotations

import logging
import socket
import struct
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from sockhub import AsyncClient
from sockhub.protocol.frames import Decoder, Frame, encode_frame, encode_header
from sockhub.server import BodySink, OpSpec, Request, Service, Session
from sockhub.server.config import load_config
from sockhub.server.session import ServerSession
from sockhub.services import default_services

from .conftest import RawPeer, RunningServer, running_server


class _Sink:
    """Pauses reading for its service at the first chunk, as a slow disk would."""

    def __init__(self, svc: HoldService, req: Request) -> None:
        self.svc = svc
        self.req = req
        self.size = 0

    def buffer(self, size: int) -> memoryview | None:
        return None

    def write(self, chunk: bytes | memoryview) -> None:
        if not self.size:
            self.req.session.pause_reading(self.svc)
            self.svc.paused = self.req.session
        self.size += len(chunk)

    def end(self) -> None:
        self.req.ok(got=self.size)

    def abort(self) -> None:
        pass


class HoldService(Service):
    """``hold`` pauses the session under the owner the client names; ``slow`` is a
    streamed body whose sink pauses the session (the test resumes both)."""

    name = "hold"

    def __init__(self) -> None:
        self.sessions: list[Session] = []
        self.paused: Session | None = None

    def ops(self) -> Iterable[OpSpec]:
        return (
            OpSpec("hold", self._hold, "hold"),
            OpSpec("slow", self._slow, "hold", body=lambda s, h: (1 << 20, True)),
        )

    def _hold(self, req: Request) -> None:
        req.session.pause_reading(req.header["owner"])
        self.sessions.append(req.session)
        req.ok()

    def _slow(self, req: Request) -> Any:
        sink: BodySink = _Sink(self, req)
        return sink


def _reading(session: Session) -> bool:
    assert isinstance(session, ServerSession)
    return bool(session.link.transport.is_reading())  # type: ignore[attr-defined]


def _with(tmp_path: Path, **settings: Any) -> tuple[Any, HoldService]:
    svc = HoldService()
    config = load_config({"data": tmp_path}, env={})
    return running_server(tmp_path, [*default_services(config), svc], **settings), svc


def test_one_owners_resume_does_not_lift_anothers_pause(tmp_path: Path) -> None:
    manager, svc = _with(tmp_path)
    with manager as srv:
        peer = RawPeer(srv.port)
        peer.request({"op": "hold", "id": 1, "owner": "a"})
        assert peer.frame().header["re"] == 1
        session = svc.sessions[0]
        srv.call(lambda: session.pause_reading("b"))
        srv.call(lambda: session.resume_reading("a"))
        assert srv.call(lambda: _reading(session)) is False  # b still holds it
        srv.call(lambda: session.resume_reading("a"))  # a second resume of a changes nothing
        assert srv.call(lambda: _reading(session)) is False
        srv.call(lambda: session.resume_reading("b"))
        peer.request({"op": "ping", "id": 2})
        assert peer.frame().header == {"op": "pong", "re": 2}


def test_stall_clock_stops_while_the_server_pauses(tmp_path: Path) -> None:
    """A body the server stopped reading (its sink was full) is not a client's stall."""
    manager, svc = _with(tmp_path, handshake_timeout=1.0)
    with manager as srv:
        peer = RawPeer(srv.port)
        peer.request({"op": "ping", "id": 5})
        assert peer.frame().header["re"] == 5
        peer.send(bytes(encode_header({"op": "slow", "id": 1}, 10)) + b"12345")
        srv.wait_until(lambda: svc.paused is not None)
        start = srv.call(srv.loop.time)
        srv.wait_until(lambda: srv.loop.time() - start > 3.0)  # three stall timeouts pass
        session = svc.paused
        assert session is not None and not session.closed
        srv.call(lambda: session.resume_reading(svc))
        peer.send(b"67890")
        assert peer.frame().header == {"op": "ok", "re": 1, "got": 10}


def test_sweeper_goes_on_after_a_failing_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real = ServerSession.check_timers
    broken: list[ServerSession] = []

    def check(self: ServerSession, now: float) -> None:
        if self in broken:
            raise RuntimeError("a broken timer check")
        real(self, now)

    monkeypatch.setattr(ServerSession, "check_timers", check)
    with running_server(tmp_path, handshake_timeout=1.0) as srv:
        first = RawPeer(srv.port)
        srv.wait_until(lambda: len(srv.server.connections) == 1)  # type: ignore[union-attr]
        srv.call(lambda: broken.extend(srv.server.connections))  # type: ignore[union-attr]
        srv.wait_until(lambda: "a broken timer check" in caplog.text)
        silent = RawPeer(srv.port)
        error = silent.frame().header  # the sweeper still cuts a silent client
        assert error["code"] == "limit.idle" and error["fatal"] is True
        srv.wait_until(lambda: "a broken timer check" in caplog.text.split("limit.idle")[-1])
        first.close()


async def test_shutdown_with_chat_members_writes_nothing_after_eof(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with running_server(tmp_path) as srv:
        members = [await AsyncClient.connect(srv.address) for _ in range(4)]
        for n, member in enumerate(members):
            await member.join("all", f"m{n}")
        srv.stop()
        for member in members:
            await member.close()
    assert "write_eof" not in caplog.text
    assert "Traceback" not in caplog.text


@pytest.mark.parametrize(
    ("sent", "named", "hint"),
    [
        (b"hello there\n", "raw text", "sockhub lab serve` (ports 9700-9725)"),
        (
            bytes([0xFF, 0xFE, 0x00, 0x01, 0x80]),
            "binary data",
            "other programs need their own port",
        ),
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP", "web port"),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(40), "TLS", "--tls"),
        (
            struct.pack("<i", 32) + b'{"cmd": "upload", "filesize": 3}',
            "course JSON header",
            "sockhub lab serve",
        ),
    ],
)
def test_foreign_bytes_are_named_in_the_log(
    srv: RunningServer, caplog: pytest.LogCaptureFixture, sent: bytes, named: str, hint: str
) -> None:
    peer = RawPeer(srv.port)
    peer.send(sent)
    peer.sock.shutdown(socket.SHUT_WR)
    assert peer.closed_by_server()
    srv.wait_until(lambda: "not speaking sockhub" in caplog.text)
    assert named in caplog.text and hint in caplog.text


def test_tls_handshakes_count_against_the_caps(tmp_path: Path) -> None:
    """Silent TLS handshakes from one address use up its slots, not every descriptor."""
    with running_server(tmp_path, tls=True, max_connections_per_ip=3) as srv:
        silent = [socket.create_connection(("127.0.0.1", srv.port)) for _ in range(3)]
        srv.wait_until(lambda: srv.server.per_ip["127.0.0.1"] == 3)  # type: ignore[union-attr]
        extra = socket.create_connection(("127.0.0.1", srv.port))
        extra.settimeout(10)
        assert extra.recv(1) == b""  # refused before any handshake
        for sock in silent:
            sock.close()
        srv.wait_until(lambda: not srv.server.per_ip)  # type: ignore[union-attr]
        extra.close()


class _MessageLink:
    """The smallest adapter: what the session writes is kept, nothing is read."""

    def __init__(self) -> None:
        self.sent = bytearray()
        self.state = "open"

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.sent += data

    def buffered(self) -> int:
        return 0

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def write_eof(self) -> bool:
        return False

    def close(self) -> None:
        self.state = "closed"

    def abort(self) -> None:
        self.state = "aborted"

    def socket_fd(self) -> int | None:
        return None


def _frames(data: bytes | bytearray) -> list[dict[str, Any]]:
    decoder = Decoder(max_header=1 << 20, max_body=1 << 20)
    decoder.receive_data(data)
    headers = []
    while (event := decoder.next_event()) is not None:
        assert isinstance(event, Frame)
        headers.append(event.header)
    return headers


def test_a_message_adapter_plugs_into_the_session(srv: RunningServer) -> None:
    """An adapter that is not asyncio's (the WebSocket bridge's shape): admission, hello,
    whole frames in, frames out, a message cut inside a frame is refused, close."""
    server = srv.server
    assert server is not None
    link = _MessageLink()
    session = srv.call(lambda: ServerSession(server, link, "ws", "127.0.0.1"))
    assert srv.call(session.open) is True
    ping = encode_frame({"op": "ping", "id": 1})
    srv.call(lambda: session.receive_frame(ping + encode_frame({"op": "ping", "id": 2})))
    srv.wait_until(lambda: len(_frames(link.sent)) == 3)
    hello, pong1, pong2 = _frames(link.sent)
    assert hello["op"] == "hello" and (pong1["re"], pong2["re"]) == (1, 2)
    assert srv.call(lambda: session in server.connections)
    srv.call(lambda: session.receive_frame(ping[:-2]))
    assert _frames(link.sent)[-1]["code"] == "frame.bad" and link.state == "closed"
    srv.call(lambda: session.connection_lost(None))
    assert srv.call(lambda: session not in server.connections)
