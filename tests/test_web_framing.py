"""The post-upgrade frame reader (web/framing.py): sans-IO, whole and byte by byte, and
hostile clients on real sockets, each refused with the close code RFC 6455 names."""

from __future__ import annotations

import base64
import itertools
import os
import socket
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sockhub.protocol.frames import Decoder, Frame, encode_frame
from sockhub.web.framing import (
    BINARY,
    CLOSE,
    PING,
    PONG,
    FrameError,
    FrameReader,
    SharedFrames,
    close_frame,
    parse_close,
)

from .web_support import RunningWeb, running_web

MAX = 1 << 20


def client_frame(
    first: int,
    payload: bytes,
    *,
    mask: bytes | None = b"\x12\x34\x56\x78",
    length: int | None = None,
) -> bytes:
    """A client frame as RFC 6455 section 5.2 lays it out; ``mask=None`` leaves it
    unmasked, ``length`` overrides the declared length (in its shortest form)."""
    size = len(payload) if length is None else length
    masked = 0x80 if mask is not None else 0
    if size < 126:
        head = bytes((first, masked | size))
    elif size < 0x10000:
        head = struct.pack("!BBH", first, masked | 126, size)
    else:
        head = struct.pack("!BBQ", first, masked | 127, size)
    if mask is None:
        return head + payload
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + body


def binary(payload: bytes, fin: bool = True) -> bytes:
    return client_frame((0x80 if fin else 0) | BINARY, payload)


def events_of(reader: FrameReader, data: bytes, max_message: int = MAX) -> list[tuple[int, bytes]]:
    reader.feed(data)
    events = []
    while (event := reader.next_event(max_message)) is not None:
        events.append(event)
    return events


def joined(events: list[tuple[int, bytes]]) -> list[tuple[int, bytes]]:
    """Adjacent data pieces as one (the reader hands them on as they arrive)."""
    out: list[tuple[int, bytes]] = []
    for opcode, payload in events:
        if out and opcode == BINARY and out[-1][0] == BINARY:
            out[-1] = (BINARY, out[-1][1] + payload)
        else:
            out.append((opcode, payload))
    return out


STREAM = (
    binary(b"first", fin=False)
    + client_frame(0x80 | PING, b"are you there")
    + client_frame(0x00, b" and")  # a continuation, not final
    + client_frame(0x80, b" last")
    + binary(b"x" * 300)
    + binary(b"y" * 70000)
    + binary(b"")
    + client_frame(0x80 | PONG, b"")
    + client_frame(0x80 | PING, b"p" * 125)  # a control frame at its bound
    + client_frame(0x80 | CLOSE, struct.pack("!H", 1000) + b"bye")
)
EXPECTED = [
    (BINARY, b"first"),
    (PING, b"are you there"),
    (BINARY, b" and last" + b"x" * 300 + b"y" * 70000),
    (PONG, b""),
    (PING, b"p" * 125),
    (CLOSE, struct.pack("!H", 1000) + b"bye"),
]


def test_whole_and_byte_by_byte_read_the_same() -> None:
    assert joined(events_of(FrameReader(), STREAM)) == EXPECTED
    reader = FrameReader()
    events: list[tuple[int, bytes]] = []
    for i in range(len(STREAM)):
        events += events_of(reader, STREAM[i : i + 1])
    assert joined(events) == EXPECTED


@settings(max_examples=200, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=12))
def test_any_split_reads_the_same(cuts: list[int]) -> None:
    reader = FrameReader()
    events: list[tuple[int, bytes]] = []
    bounds = [0, *sorted(cuts), len(STREAM)]
    for start, end in itertools.pairwise(bounds):
        events += events_of(reader, STREAM[start:end])
    assert joined(events) == EXPECTED


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=200))
def test_any_input_reads_or_raises_frame_error(data: bytes) -> None:
    reader = FrameReader()
    try:
        for opcode, _payload in events_of(reader, data, max_message=100):
            assert opcode in (BINARY, PING, PONG, CLOSE)
    except FrameError as exc:
        assert exc.code in (1002, 1003, 1009)


@pytest.mark.parametrize(
    ("data", "code", "why"),
    [
        (client_frame(0x82, b"abc", mask=None), 1002, "masked"),
        (client_frame(0xC2, b"abc"), 1002, "reserved bit"),
        (client_frame(0x92, b"abc"), 1002, "reserved bit"),
        (client_frame(0xA2, b"abc"), 1002, "reserved bit"),
        (client_frame(0x83, b"abc"), 1002, "unknown opcode 3"),
        (client_frame(0x8B, b""), 1002, "unknown opcode 11"),
        (client_frame(0x81, b"text"), 1003, "binary messages only"),
        (client_frame(0x80, b"abc"), 1002, "no message begun"),
        (binary(b"a", fin=False) + binary(b"b"), 1002, "inside a fragmented one"),
        (binary(b"a", fin=False) + client_frame(0x81, b"b"), 1002, "inside a fragmented one"),
        (client_frame(0x09, b""), 1002, "fragmented control"),
        (client_frame(0x89, b"p" * 126), 1002, "over 125 bytes"),
        (client_frame(0x88, b"c" * 126), 1002, "over 125 bytes"),
        (b"\x82\xfe\x00\x7d" + b"\x00" * 4, 1002, "shortest form"),
        (b"\x82\xff" + struct.pack("!Q", 0xFFFF) + b"\x00" * 4, 1002, "shortest form"),
        (b"\x82\xff" + struct.pack("!Q", 1 << 63) + b"\x00" * 4, 1002, "shortest form"),
        (client_frame(0x82, b"", length=MAX + 1), 1009, f"over {MAX} bytes"),
        (binary(b"a" * 100, fin=False) + client_frame(0x80, b"", length=MAX - 99), 1009, "over"),
    ],
)
def test_hostile_frames_are_refused(data: bytes, code: int, why: str) -> None:
    with pytest.raises(FrameError) as refused:
        events_of(FrameReader(), data)
    assert refused.value.code == code and why in refused.value.reason


def test_a_message_at_the_bound_is_read() -> None:
    """The bound counts a message's payload over all its fragments, not one frame."""
    data = binary(b"a" * 100, fin=False) + client_frame(0x80, b"b" * (MAX - 100))
    assert joined(events_of(FrameReader(), data)) == [(BINARY, b"a" * 100 + b"b" * (MAX - 100))]


def test_an_oversized_length_is_refused_before_its_payload() -> None:
    """Only the 14-byte header has arrived: the size is judged from it alone."""
    head = client_frame(0x82, b"", length=1 << 40)
    with pytest.raises(FrameError) as refused:
        events_of(FrameReader(), head)
    assert refused.value.code == 1009


@pytest.mark.parametrize(
    ("payload", "parsed"),
    [
        (b"", (None, "")),
        (struct.pack("!H", 1000), (1000, "")),
        (struct.pack("!H", 1014) + "né".encode(), (1014, "né")),
        (struct.pack("!H", 3000), (3000, "")),
        (struct.pack("!H", 4999), (4999, "")),
    ],
)
def test_close_payloads_that_are_valid(payload: bytes, parsed: tuple[int | None, str]) -> None:
    assert parse_close(payload) == parsed


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (b"\x03", 1002),
        (struct.pack("!H", 999), 1002),
        (struct.pack("!H", 1004), 1002),
        (struct.pack("!H", 1005), 1002),
        (struct.pack("!H", 1006), 1002),
        (struct.pack("!H", 1015), 1002),
        (struct.pack("!H", 2999), 1002),
        (struct.pack("!H", 5000), 1002),
        (struct.pack("!H", 1000) + b"\xff\xfe", 1007),
    ],
)
def test_close_payloads_that_are_refused(payload: bytes, code: int) -> None:
    with pytest.raises(FrameError) as refused:
        parse_close(payload)
    assert refused.value.code == code


def test_a_close_reason_is_cut_to_fit_at_a_character() -> None:
    frame = close_frame(1001, "é" * 100)
    assert frame[0] == 0x88 and frame[1] <= 125
    assert frame[4:].decode() == "é" * 61


def test_shared_frames_frame_equal_bytes_once() -> None:
    shared = SharedFrames()
    batch = encode_frame({"op": "chat.msg", "room": "r"}, b"hi")
    first = shared.frame(batch)
    assert first == bytes((0x82, len(batch))) + batch
    assert shared.frame(bytes(batch)) is first  # equal bytes from another member's session
    other = shared.frame(b"other")
    assert other == b"\x82\x05other" and shared.frame(b"other") is other
    at_limit = b"z" * SharedFrames.LIMIT
    assert shared.frame(at_limit) is shared.frame(bytes(bytearray(at_limit)))
    big = b"z" * (SharedFrames.LIMIT + 1)
    framed = shared.frame(big)
    assert framed == b"\x82\x7f" + struct.pack("!Q", len(big)) + big
    assert shared.frame(big) is not framed  # not kept: a file body goes to one connection


# hostile clients on real sockets ---------------------------------------------------


@pytest.fixture
def web(tmp_path: Path) -> Iterator[RunningWeb]:
    with running_web(tmp_path / "data") as running:
        yield running


class RawWebSocket:
    """A socket that did the upgrade by hand, to send what no WebSocket client would."""

    def __init__(self, web: RunningWeb, *, early: bytes = b"") -> None:
        self.sock = socket.create_connection(("127.0.0.1", web.port), timeout=10)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (
                f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{web.port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: sockhub.v1\r\n"
                f"Origin: {web.origin}\r\n\r\n"
            ).encode()
            + early
        )
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            self._more()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 101 "), head
        self.decoder = Decoder(max_header=1 << 20, max_body=1 << 30)
        self.eof = False

    def _more(self) -> None:
        data = self.sock.recv(1 << 16)
        if not data:
            raise ConnectionError("the server closed the connection")
        self.buf += data

    def server_frame(self) -> tuple[int, bytes]:
        """The next server frame (opcode with FIN, payload); server frames are unmasked."""
        while True:
            if len(self.buf) >= 2:
                assert not self.buf[1] & 0x80, "a server frame must not be masked"
                size, at = self.buf[1] & 0x7F, 2
                if size == 126 and len(self.buf) >= 4:
                    size, at = struct.unpack_from("!H", self.buf, 2)[0], 4
                elif size == 127 and len(self.buf) >= 10:
                    size, at = struct.unpack_from("!Q", self.buf, 2)[0], 10
                if (size < 126 or at > 2) and len(self.buf) >= at + size:
                    first, payload = self.buf[0], self.buf[at : at + size]
                    self.buf = self.buf[at + size :]
                    return first, payload
            self._more()

    def sockhub(self) -> Frame:
        """The next sockhub frame from the binary messages (skipping pings)."""
        while True:
            event = self.decoder.next_event()
            if event is not None:
                assert isinstance(event, Frame)
                return event
            first, payload = self.server_frame()
            if first & 0x0F == BINARY or first & 0x0F == 0:
                self.decoder.receive_data(payload)

    def closed_with(self) -> int | None:
        """Read to the server's close frame, then its TCP close: the close code."""
        while True:
            first, payload = self.server_frame()
            if first == 0x88:
                break
        code = struct.unpack_from("!H", payload)[0] if payload else None
        try:
            while self.sock.recv(1 << 16):
                pass
        except ConnectionResetError:
            pass
        return code

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def close(self) -> None:
        self.sock.close()


def echo(rid: int, body: bytes) -> bytes:
    return encode_frame({"op": "echo", "id": rid, "size": len(body)}, body)


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (client_frame(0x82, echo(1, b"a"), mask=None), 1002),
        (client_frame(0xC2, echo(1, b"a")), 1002),
        (client_frame(0x87, b""), 1002),
        (client_frame(0x81, b"hello"), 1003),
        (client_frame(0x80, echo(1, b"a")), 1002),
        (binary(b"\x00", fin=False) + binary(b"\x00"), 1002),
        (client_frame(0x89, b"p" * 126), 1002),
        (client_frame(0x09, b"p"), 1002),
        (client_frame(0x82, b"", length=1 << 40), 1009),
        (client_frame(0x88, struct.pack("!H", 1005)), 1002),
        (client_frame(0x88, b"\x03"), 1002),
        (client_frame(0x88, struct.pack("!H", 1000) + b"\xc3"), 1007),
    ],
)
def test_a_hostile_client_is_closed_with_the_right_code(
    web: RunningWeb, data: bytes, code: int
) -> None:
    peer = RawWebSocket(web)
    try:
        assert peer.sockhub().header["op"] == "hello"
        peer.send(data)
        assert peer.closed_with() == code
    finally:
        peer.close()
    server = web.srv.server
    assert server is not None
    web.srv.wait_until(lambda: not server.connections and not web.web.peers)


def test_fragments_and_pings_interleaved_over_a_socket(web: RunningWeb) -> None:
    peer = RawWebSocket(web)
    try:
        peer.sockhub()
        frame = echo(1, b"abcdef") + echo(2, b"g")
        peer.send(binary(frame[:5], fin=False))
        peer.send(client_frame(0x89, b"p" * 125))  # a ping at the control frames' bound
        peer.send(client_frame(0x00, frame[5:9]) + client_frame(0x80, frame[9:]))
        assert peer.server_frame() == (0x8A, b"p" * 125)
        assert [peer.sockhub().body, peer.sockhub().body] == [b"abcdef", b"g"]
        peer.send(client_frame(0x88, struct.pack("!H", 4000) + b"done"))
        assert peer.closed_with() == 4000  # the server echoes the client's code
    finally:
        peer.close()


def test_a_message_at_the_bound_passes_and_one_byte_more_is_1009(tmp_path: Path) -> None:
    """The bound is one frame with the largest header and body the session takes."""
    with running_web(tmp_path / "data", max_body=4096, max_header=1024) as web:
        bound = web.web.max_message
        body = b"q" * 4096
        bare = encode_frame({"op": "echo", "id": 1, "size": len(body), "pad": ""}, body)
        pad = "p" * (bound - len(bare))
        message = encode_frame({"op": "echo", "id": 1, "size": len(body), "pad": pad}, body)
        assert len(message) == bound == 4 + 1024 + 4096
        peer = RawWebSocket(web)
        try:
            peer.sockhub()
            peer.send(binary(message[:100], fin=False) + client_frame(0x80, message[100:]))
            assert peer.sockhub().body == body
            over = message + b"q"  # the same frame's start, then one byte too many
            peer.send(binary(over[:100], fin=False) + client_frame(0x80, over[100:]))
            assert peer.closed_with() == 1009
        finally:
            peer.close()


def test_frames_sent_before_the_101_fail_the_connection(web: RunningWeb) -> None:
    """RFC 6455 section 4.1: a client waits for the handshake's answer before framing."""
    peer = RawWebSocket(web, early=binary(echo(1, b"x")))
    try:
        assert peer.closed_with() == 1002
    finally:
        peer.close()


def test_a_client_that_never_answers_the_close_is_cut_off(web: RunningWeb) -> None:
    web.srv.call(lambda: setattr(web.web, "close_timeout", 0.2))
    peer = RawWebSocket(web)
    try:
        peer.sockhub()
        web.srv.call(lambda: [p.close(1001, "going") for p in web.web.peers])
        assert peer.closed_with() == 1001  # then nothing sent back: the server ends TCP
    finally:
        peer.close()
    server = web.srv.server
    assert server is not None
    web.srv.wait_until(lambda: not server.connections)


def test_no_pong_is_asked_for_while_the_server_is_not_reading(web: RunningWeb) -> None:
    """A session the server has paused (backpressure) for longer than the pong deadline
    stays open: the client's pong would wait unread. Once reading again, a client that
    never answers pings is closed with 1011 within the deadline."""
    interval = 0.2
    web.srv.call(lambda: setattr(web.web, "ping_interval", interval))
    peer = RawWebSocket(web)  # answers no ping
    try:
        peer.sockhub()
        ws = web.srv.call(lambda: next(iter(web.web.peers)))
        session = ws.receiver.session
        paused_at = web.srv.call(lambda: (session.pause_reading("test"), web.web.loop.time())[1])
        # the sweeps go on well past the deadline, and the socket is still open
        web.srv.wait_until(lambda: ws.last_pong > paused_at + 2 * (2 * interval + 1))
        assert web.srv.call(lambda: ws in web.web.peers)
        web.srv.call(lambda: session.resume_reading("test"))
        assert peer.closed_with() == 1011
    finally:
        peer.close()
