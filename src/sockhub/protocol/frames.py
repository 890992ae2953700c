"""Frame encoding and incremental decoding (PROTOCOL.md section 1), sans-IO.

A frame is ``!I`` header length, a JSON object header, then ``size`` body bytes. The
decoder is fed whatever chunks the transport produced and hands back events; it checks
the header length and the body ``size`` against the limits *before* it keeps a single
body byte, so a peer can never make it buffer more than one permitted frame.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec

from .errors import FrameBad, FrameTooLarge

__all__ = [
    "DEFAULT_MAX_BODY",
    "DEFAULT_MAX_HEADER",
    "MAX_DATAGRAM",
    "MAX_DEPTH",
    "MAX_ID",
    "MAX_SIZE",
    "BodyChunk",
    "BodyEnd",
    "BodyPolicy",
    "Decoder",
    "Event",
    "Frame",
    "FrameStart",
    "decode_datagram",
    "encode_frame",
    "encode_header",
    "encode_header_into",
    "pad_frame",
    "parse_header",
]

DEFAULT_MAX_HEADER = 65_536
DEFAULT_MAX_BODY = 1_048_576
MAX_SIZE = 2**63 - 1
MAX_ID = 2**53 - 1
MAX_DATAGRAM = 65_507
"""The largest UDP payload over IPv4, so the largest frame a datagram carries."""
MAX_DEPTH = 32
_SHALLOW = 2 * MAX_DEPTH + 1
"""Nesting deeper than MAX_DEPTH takes more brackets (opened and closed) than this many bytes."""

_PREFIX = struct.Struct("!I")
_encoder = msgspec.json.Encoder()
_json_encode = _encoder.encode_into
_json_dumps = _encoder.encode
_json_decode = msgspec.json.Decoder(dict).decode
_json_fields = msgspec.json.Decoder(dict[str, msgspec.Raw]).decode
_json_value = msgspec.json.Decoder(float_hook=float).decode
_STRINGS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


@dataclass(slots=True)
class Frame:
    """A whole frame whose body was small enough to be held in memory."""

    header: dict[str, Any]
    body: bytes


@dataclass(slots=True)
class FrameStart:
    """A frame whose body is streamed: ``BodyChunk`` events then one ``BodyEnd`` follow."""

    header: dict[str, Any]
    size: int


@dataclass(slots=True)
class BodyChunk:
    data: bytes


@dataclass(slots=True)
class BodyEnd:
    header: dict[str, Any]


Event = Frame | FrameStart | BodyChunk | BodyEnd

BodyPolicy = Callable[[dict[str, Any]], "tuple[int, bool]"]
"""Given a header, the largest body it may carry and whether that body is streamed."""


def encode_header_into(out: bytearray, header: dict[str, Any], size: int = 0) -> None:
    """Append length prefix plus JSON header to ``out`` (batched writes, no extra copy)."""
    if size:
        header["size"] = size
    start = len(out)
    _json_encode(header, out, start + 4)
    _PREFIX.pack_into(out, start, len(out) - start - 4)


def encode_header(header: dict[str, Any], size: int = 0) -> bytearray:
    """Length prefix plus JSON header; ``size`` is set when a body of that length follows."""
    out = bytearray()
    encode_header_into(out, header, size)
    return out


def encode_frame(header: dict[str, Any], body: bytes | bytearray | memoryview = b"") -> bytes:
    """One whole frame; the header dict gets its ``size`` from the body.

    Encoded to ``bytes`` and joined in one allocation: a growing ``bytearray`` that is
    copied out at the end costs about twice as much for the small frames most are.
    """
    if body:
        header["size"] = len(body)
    raw = _json_dumps(header)
    return b"".join((_PREFIX.pack(len(raw)), raw, body))


def pad_frame(frame: bytes, at_least: int) -> bytes:
    """``frame`` grown to ``at_least`` bytes by JSON whitespace after its header object.

    A UDP request is answered with at most as many bytes as it had (section 1), so a
    client pads a request whose reply may be larger; the header stays the same JSON.
    """
    extra = at_least - len(frame)
    if extra <= 0:
        return frame
    (hlen,) = _PREFIX.unpack_from(frame)
    end = 4 + hlen
    return b"".join((_PREFIX.pack(hlen + extra), frame[4:end], b" " * extra, frame[end:]))


def _depth(obj: Any) -> int:
    """Nesting depth of parsed JSON, iteratively so a hostile header cannot recurse us."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(obj, 1)]
    while stack:
        node, level = stack.pop()
        if level > deepest:
            deepest = level
            if deepest > MAX_DEPTH:
                break
        children = node.values() if isinstance(node, dict) else node
        for child in children:
            if isinstance(child, dict | list):
                stack.append((child, level + 1))
    return deepest


def _raw_depth(text: bytes) -> int:
    """Nesting depth of valid JSON text, counted on its brackets outside strings."""
    depth = deepest = 0
    for byte in _STRINGS.sub(b"", text).translate(None, _NOT_BRACKETS):
        if byte in b"[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def _parse_wide_numbers(raw: bytes | bytearray | memoryview) -> dict[str, Any]:
    """The slow path of ``parse_header``, taken when msgspec refused a value's type.

    That is either a header that is no object, or a number Python's fast decoding does not
    hold (beyond a double, like ``1e400``, or an integer of more than 4,300 digits). Such a
    header is still valid JSON, and unknown keys must be ignored whatever they hold, so it
    is decoded field by field: an overflowing float becomes infinity, and a field with an
    over-long integer keeps its raw JSON text (``msgspec.Raw``), which no field getter
    accepts, so a known field holding one is still a ``bad.request``.
    """
    try:
        fields = _json_fields(raw)
    except msgspec.ValidationError as exc:
        raise FrameBad("header is not a JSON object") from exc
    except (msgspec.DecodeError, RecursionError) as exc:
        raise FrameBad("header is not UTF-8 JSON within the nesting limit") from exc
    header: dict[str, Any] = {}
    for key, value in fields.items():
        try:
            header[key] = _json_value(value)
        except msgspec.ValidationError:
            text = bytes(value)
            try:
                text.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise FrameBad("header is not UTF-8 JSON") from exc
            if _raw_depth(text) >= MAX_DEPTH:
                raise FrameBad(f"header nested deeper than {MAX_DEPTH} levels") from None
            header[key] = msgspec.Raw(text)
        except (msgspec.DecodeError, RecursionError) as exc:
            raise FrameBad("header is not UTF-8 JSON within the nesting limit") from exc
    return header


def parse_header(
    raw: bytes | bytearray | memoryview, brackets: int | None = None
) -> dict[str, Any]:
    """Decode and check one header: UTF-8 JSON object, not too deep, a sound ``size``.

    ``brackets`` is how many ``{`` and ``[`` the raw header holds, when the caller
    counted them; the tree is walked for depth only when that could exceed the limit.
    """
    try:
        header = _json_decode(raw)
    except msgspec.ValidationError:
        header = _parse_wide_numbers(raw)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise FrameBad("header is not UTF-8 JSON") from exc
    except RecursionError as exc:
        raise FrameBad(f"header nested deeper than {MAX_DEPTH} levels") from exc
    if brackets is None:
        data = bytes(raw)
        brackets = data.count(b"{") + data.count(b"[")
    if brackets > MAX_DEPTH and _depth(header) > MAX_DEPTH:
        raise FrameBad(f"header nested deeper than {MAX_DEPTH} levels")
    size = header.get("size", 0)
    if size.__class__ is not int or not 0 <= size <= MAX_SIZE:
        raise FrameBad("size must be a non-negative integer")
    return header


def _default_policy(max_body: int) -> BodyPolicy:
    limits = (max_body, False)
    return lambda header: limits


class Decoder:
    """Incremental frame decoder: ``receive_data`` then ``next_event`` until it gives None.

    After a ``FrameBad`` or ``FrameTooLarge`` the stream has lost its frame boundary, so
    every later call raises the same error.
    """

    __slots__ = (
        "_buf",
        "_direct",
        "_error",
        "_max_header",
        "_pending",
        "_policy",
        "_pos",
        "_stream",
    )

    def __init__(
        self,
        *,
        max_header: int = DEFAULT_MAX_HEADER,
        max_body: int = DEFAULT_MAX_BODY,
        policy: BodyPolicy | None = None,
    ) -> None:
        self._buf = bytearray()
        self._pos = 0
        self._max_header = max_header
        self._policy = policy or _default_policy(max_body)
        self._pending: tuple[dict[str, Any], int] | None = None
        self._stream: tuple[dict[str, Any], int] | None = None
        self._direct: bytes | None = None
        """Bytes of a streamed body that arrived as one whole ``bytes``: handed on uncopied."""
        self._error: Exception | None = None

    @property
    def in_frame(self) -> bool:
        """True while part of a frame has arrived but not all of it."""
        return self._pos < len(self._buf) or self._pending is not None or self._stream is not None

    @property
    def buffered(self) -> int:
        return len(self._buf) - self._pos + (len(self._direct) if self._direct else 0)

    @property
    def body_left(self) -> int:
        """Bytes of the streamed body still to come when none is buffered here (else 0):
        a caller may read that many straight into a buffer of its own and report them
        with ``body_received`` instead of passing them through ``receive_data``."""
        if self._stream is None or self._direct is not None or self._pos < len(self._buf):
            return 0
        return self._stream[1]

    def body_received(self, n: int) -> None:
        """``n`` bytes of the streamed body arrived past the decoder (see ``body_left``);
        once the body is complete, ``next_event`` gives its ``BodyEnd``."""
        if self._stream is None or not 0 < n <= self.body_left:
            raise ValueError(f"{n} body bytes were not expected")
        header, left = self._stream
        self._stream = (header, left - n)

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Take the next bytes. A ``bytes`` that holds only streamed-body bytes is kept,
        not copied, and becomes a ``BodyChunk`` as it is (file bodies move at disk speed)."""
        buf = self._buf
        if self._pos:
            del buf[: self._pos]
            self._pos = 0
        if self._direct is not None:
            buf += self._direct
            self._direct = None
        if not buf and self._stream is not None and isinstance(data, bytes) and data:
            self._direct = data
        else:
            buf += data

    def next_event(self) -> Event | None:
        if self._error is not None:
            raise self._error
        try:
            return self._next()
        except (FrameBad, FrameTooLarge) as exc:
            self._error = exc
            raise

    def _next(self) -> Event | None:
        buf = self._buf
        pos = self._pos
        avail = len(buf) - pos
        if self._stream is not None:
            header, left = self._stream
            if left == 0:
                self._stream = None
                return BodyEnd(header)
            direct = self._direct
            if direct is not None:
                self._direct = None
                n = len(direct)
                if n <= left:
                    self._stream = (header, left - n)
                    return BodyChunk(direct)
                buf += direct[left:]  # the body ends inside: the rest is the next frame's
                self._stream = (header, 0)
                return BodyChunk(direct[:left])
            if avail == 0:
                return None
            n = left if avail > left else avail
            self._pos = pos + n
            self._stream = (header, left - n)
            with memoryview(buf) as view:
                return BodyChunk(bytes(view[pos : pos + n]))
        if self._pending is None:
            if avail < 4:
                return None
            (hlen,) = _PREFIX.unpack_from(buf, pos)
            if hlen == 0:
                raise FrameBad("header length is 0")
            if hlen > self._max_header:
                raise FrameTooLarge(
                    f"header of {hlen} bytes is over the limit of {self._max_header}"
                )
            if avail < 4 + hlen:
                return None
            end = pos + 4 + hlen
            raw = buf[pos + 4 : end]
            header = parse_header(raw, raw.count(b"{") + raw.count(b"[") if hlen > _SHALLOW else 0)
            size = header.get("size", 0)
            limit, stream = self._policy(header)
            if size > limit:
                raise FrameTooLarge(
                    f"body of {size} bytes is over the limit of {limit} for this op"
                )
            pos = self._pos = end
            avail -= 4 + hlen
            if stream:
                self._stream = (header, size)
                return FrameStart(header, size)
            if avail >= size:
                self._pos = pos + size
                return Frame(header, bytes(buf[pos : pos + size]) if size else b"")
            self._pending = (header, size)
            return None
        header, size = self._pending
        if avail < size:
            return None
        self._pending = None
        self._pos = pos + size
        return Frame(header, bytes(buf[pos : pos + size]))


def decode_datagram(
    data: bytes, *, max_header: int = DEFAULT_MAX_HEADER, max_body: int = DEFAULT_MAX_BODY
) -> Frame:
    """The one whole frame a datagram must hold (section 1, UDP); anything else raises."""
    if len(data) < 4:
        raise FrameBad("datagram shorter than a length prefix")
    (hlen,) = _PREFIX.unpack_from(data, 0)
    if hlen == 0:
        raise FrameBad("header length is 0")
    if hlen > max_header or 4 + hlen > len(data):
        raise FrameTooLarge("header over the limit or past the datagram")
    header = parse_header(memoryview(data)[4 : 4 + hlen])
    size = header.get("size", 0)
    if size > max_body:
        raise FrameTooLarge("body over the limit")
    if 4 + hlen + size != len(data):
        raise FrameBad("datagram is not exactly one frame")
    return Frame(header, data[4 + hlen :])
