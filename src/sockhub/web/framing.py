"""RFC 6455 framing after the upgrade: a strict reader of client frames, and server frames.

python-websockets does the opening handshake (the HTTP request, its checks, the 101);
after it a connection reads its frames here instead of through the library's
``ServerProtocol``, whose reader, parser generator and buffers were most of what an idle
WebSocket cost above a TCP connection. The ``sockhub.v1`` subprotocol needs little of
RFC 6455: binary messages only (a text message is refused with 1003), no extension (so
a reserved bit set is an error), masked client frames, control frames whole and small.

The reader is sans-I/O like the rest of the protocol code: bytes in, events out, errors
as ``FrameError`` carrying the close code to fail the connection with. Payload bytes
leave as they arrive: the session reads the messages' payloads as one byte stream
(where a message ends says nothing), so the reader never holds more than a frame
header or one control frame, and a message's declared size is checked against the
bound from its header, before any of its payload is read.
"""

from __future__ import annotations

import struct

from websockets.utils import apply_mask

__all__ = [
    "BINARY",
    "CLOSE",
    "PING",
    "PING_FRAME",
    "PONG",
    "FrameError",
    "FrameReader",
    "SharedFrames",
    "close_frame",
    "frame_header",
    "parse_close",
    "pong_frame",
]

CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
FIN = 0x80

PROTOCOL_ERROR = 1002
UNSUPPORTED_DATA = 1003
INVALID_DATA = 1007
MESSAGE_TOO_BIG = 1009

_CLOSE_CODES = frozenset((1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014))
"""Codes a peer may send (RFC 6455 section 7.4 and the IANA registry); 3000-4999 too.
1005, 1006 and 1015 only report what happened locally and never travel."""

_HEADER16 = struct.Struct("!BBH")
_HEADER64 = struct.Struct("!BBQ")
_CLOSE_CODE = struct.Struct("!H")

PING_FRAME = bytes((FIN | PING, 0))
"""The server's ping: no payload (a pong only needs to come back)."""


class FrameError(Exception):
    """The client broke RFC 6455 or the subprotocol: fail the connection with ``code``."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def frame_header(first: int, size: int) -> bytes:
    """An unmasked frame header (section 5.2): FIN and opcode, then the payload length in
    7 bits, or 126 and 16 bits, or 127 and 64 bits."""
    if size < 126:
        return bytes((first, size))
    if size < 0x10000:
        return _HEADER16.pack(first, 126, size)
    return _HEADER64.pack(first, 127, size)


def close_frame(code: int, reason: str = "") -> bytes:
    """A close frame; the reason is cut (at a character) to the 123 bytes that fit."""
    text = reason.encode()[:123].decode(errors="ignore").encode()
    payload = _CLOSE_CODE.pack(code) + text
    return frame_header(FIN | CLOSE, len(payload)) + payload


def pong_frame(payload: bytes) -> bytes:
    return frame_header(FIN | PONG, len(payload)) + payload


def parse_close(payload: bytes) -> tuple[int | None, str]:
    """A client's close frame: (code, reason), or (None, "") when it carries none."""
    if not payload:
        return None, ""
    if len(payload) == 1:
        raise FrameError(PROTOCOL_ERROR, "a close frame with a 1-byte payload")
    (code,) = _CLOSE_CODE.unpack_from(payload)
    if code not in _CLOSE_CODES and not 3000 <= code <= 4999:
        raise FrameError(PROTOCOL_ERROR, f"close code {code} may not be sent")
    try:
        reason = payload[2:].decode()
    except UnicodeDecodeError:
        raise FrameError(INVALID_DATA, "the close reason is not UTF-8") from None
    return code, reason


class FrameReader:
    """Client-to-server frames, fed in pieces of any size; ``next_event()`` returns
    ``(BINARY, payload bytes)`` for message data (pieces of frames, in order), ``(PING,
    payload)``, ``(PONG, payload)`` or ``(CLOSE, payload)``, or None until more is fed."""

    __slots__ = ("_buf", "_fin", "_in_message", "_left", "_mask", "_offset", "_pos", "_size")

    def __init__(self) -> None:
        self._buf = b""
        self._pos = 0
        self._left = -1
        """Payload bytes of the data frame being read; -1 between frames."""
        self._mask = b""
        self._offset = 0
        """Payload bytes of the data frame already unmasked (the mask's phase)."""
        self._fin = False
        self._in_message = False
        """A fragmented message has begun and not ended."""
        self._size = 0
        """Payload bytes of the message so far, counting the frame being read."""

    def feed(self, data: bytes) -> None:
        if self._pos < len(self._buf):
            self._buf = self._buf[self._pos :] + data  # at most a header or a control frame
        else:
            self._buf = data
        self._pos = 0

    def next_event(self, max_message: int) -> tuple[int, bytes] | None:
        """The next event; ``max_message`` bounds a message's payload (1009 past it)."""
        while True:
            buf, pos = self._buf, self._pos
            avail = len(buf) - pos
            if self._left > 0:
                if not avail:
                    break
                return BINARY, self._payload(buf, pos, min(self._left, avail))
            if avail < 2:
                break
            first, second = buf[pos], buf[pos + 1]
            opcode, length = self._check(first, second)
            at = pos + 2
            if length == 126:
                at += 2
            elif length == 127:
                at += 8
            if avail < at - pos + 4:
                break
            if length == 126:
                length = int.from_bytes(buf[pos + 2 : at], "big")
                if length < 126:
                    raise FrameError(PROTOCOL_ERROR, "a length not in its shortest form")
            elif length == 127:
                length = int.from_bytes(buf[pos + 2 : at], "big")
                if length < 0x10000 or length >> 63:
                    raise FrameError(PROTOCOL_ERROR, "a length not in its shortest form")
            mask = buf[at : at + 4]
            start = at + 4
            if opcode & 0x8:
                if len(buf) - start < length:
                    break  # a control frame is handed on whole
                self._pos = start + length
                return opcode, apply_mask(buf[start : self._pos], mask) if length else b""
            if opcode == BINARY:
                self._in_message, self._size = True, 0
            self._size += length
            if self._size > max_message:
                raise FrameError(MESSAGE_TOO_BIG, f"a message over {max_message} bytes")
            self._pos = start
            self._fin = bool(first & FIN)
            self._mask, self._offset, self._left = mask, 0, length
            if not length:
                self._frame_done()
        if self._pos >= len(self._buf):
            self._buf, self._pos = b"", 0  # hold no reference to a spent read
        return None

    def _check(self, first: int, second: int) -> tuple[int, int]:
        """The opcode and 7-bit length of a frame header, or why it is refused."""
        if first & 0x70:
            raise FrameError(PROTOCOL_ERROR, "a reserved bit is set (no extension was agreed)")
        if not second & 0x80:
            raise FrameError(PROTOCOL_ERROR, "a client frame must be masked")
        opcode, length = first & 0x0F, second & 0x7F
        if opcode in (CLOSE, PING, PONG):
            if not first & FIN:
                raise FrameError(PROTOCOL_ERROR, "a fragmented control frame")
            if length > 125:
                raise FrameError(PROTOCOL_ERROR, "a control frame over 125 bytes")
        elif opcode in (BINARY, TEXT):
            if self._in_message:
                raise FrameError(PROTOCOL_ERROR, "a new message inside a fragmented one")
            if opcode == TEXT:
                raise FrameError(UNSUPPORTED_DATA, "sockhub.v1 speaks binary messages only")
        elif opcode == CONTINUATION:
            if not self._in_message:
                raise FrameError(PROTOCOL_ERROR, "a continuation frame with no message begun")
        else:
            raise FrameError(PROTOCOL_ERROR, f"unknown opcode {opcode}")
        return opcode, length

    def _payload(self, buf: bytes, pos: int, n: int) -> bytes:
        mask, phase = self._mask, self._offset & 3
        if phase:
            mask = mask[phase:] + mask[:phase]
        data = apply_mask(memoryview(buf)[pos : pos + n], mask)
        self._pos = pos + n
        self._offset += n
        self._left -= n
        if not self._left:
            self._frame_done()
        return data

    def _frame_done(self) -> None:
        self._left = -1
        if self._fin:
            self._in_message, self._size = False, 0


class SharedFrames:
    """The last message framed, kept for the next connection that sends the same bytes.

    Chat fan-out queues one encoded batch on every member; each member's session writes
    it in the same event-loop turn, one after another. With this, the frame around it
    (header and payload in one buffer) is built once for the room and the same object is
    written to every WebSocket member. Equal bytes make equal frames, so a hit is always
    right; a miss costs one comparison that mostly stops at the length."""

    __slots__ = ("_data", "_framed")

    LIMIT = 64 * 1024
    """Longer messages are not kept: they are file bodies, sent to one connection."""

    def __init__(self) -> None:
        self._data: bytes | None = None
        self._framed = b""

    def frame(self, data: bytes | bytearray | memoryview) -> bytes:
        """``data`` as one final binary frame."""
        if data == self._data:
            return self._framed
        framed = frame_header(FIN | BINARY, len(data)) + data
        if isinstance(data, bytes) and len(data) <= self.LIMIT:
            self._data, self._framed = data, framed
        return framed
