"""Name what a peer sent when it is not a sockhub frame.

A client pointed at a course program, an HTTP server or a TLS port, and a course client
pointed at the framed port, both see bytes that are not a frame. Saying what they look
like ("raw text", "a little-endian length") turns a puzzling ``frame.too_large`` or hang
into an instruction. Both directions share this one classifier.
"""

from __future__ import annotations

import json
import struct

__all__ = [
    "LAB_BASE_PORT",
    "LAB_PORT_SPAN",
    "describe_foreign",
    "lab_hint",
    "looks_like_frame_start",
]

LAB_BASE_PORT = 9700
"""Where ``sockhub lab serve`` puts its first course listener by default."""
LAB_PORT_SPAN = 26
"""How many ports from the base the course listeners use (offsets 0-25, lab/formats.py)."""

_MAX_PLAUSIBLE_HEADER = 1 << 20
_COURSE_KEYS = frozenset(
    {"cmd", "filename", "filesize", "file_size", "data_size", "total_size", "md5"}
)


def looks_like_frame_start(data: bytes | bytearray | memoryview) -> bool:
    """True when ``data`` may begin a sockhub frame: a plausible ``!I`` length then ``{``."""
    if len(data) < 4:
        return True
    (h,) = struct.unpack_from("!I", data)
    if h == 0 or h > _MAX_PLAUSIBLE_HEADER:
        return False
    return len(data) == 4 or data[4:5] == b"{"


def _text(data: bytes) -> str | None:
    for encoding in ("utf-8", "gbk"):
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        if all(c.isprintable() or c in "\r\n\t" for c in text):
            return text
    return None


def _json_keys(data: bytes) -> set[str] | None:
    try:
        obj = json.loads(data)
    except ValueError:
        return None
    return set(obj) if isinstance(obj, dict) else None


def lab_hint(base: int = LAB_BASE_PORT) -> str:
    """Where a course program's bytes belong, for a diagnostic that found some on our port."""
    return f"`sockhub lab serve` (ports {base}-{base + LAB_PORT_SPAN - 1})"


def describe_foreign(data: bytes | bytearray | memoryview, *, complete: bool = False) -> str | None:
    """A few words naming what ``data`` (a peer's first bytes) is, or None if it may be a frame.

    The answer completes "this is not sockhub: it sent ...", e.g. "raw text 'hello'".
    ``complete``: no more bytes are coming (the peer went quiet or closed), so even a short
    prefix is judged instead of waited on.
    """
    raw = bytes(data[:256])
    if not raw:
        return None
    if looks_like_frame_start(raw) and not (complete and len(raw) < 4):
        return None
    if raw.startswith((b"HTTP/", b"GET ", b"POST ", b"HEAD ", b"PUT ", b"OPTIONS ")):
        return "HTTP"
    if raw[:2] in (b"\x16\x03", b"\x15\x03"):
        return "a TLS handshake (one side uses --tls, the other does not)"
    if raw.startswith(b"SSH-"):
        return "an SSH banner"
    if len(raw) >= 4:
        (le,) = struct.unpack_from("<i", raw)
        if 0 < le <= _MAX_PLAUSIBLE_HEADER:
            keys = _json_keys(raw[4 : 4 + le]) if raw[4:5] == b"{" else None
            if keys is not None and keys & _COURSE_KEYS:
                return (
                    "a little-endian length and a course JSON header ("
                    + ", ".join(sorted(keys))
                    + ")"
                )
            return "a little-endian length prefix (struct.pack('i'))"
    digits = raw.split(b"\n", 1)[0].strip()
    if digits.isdigit() and len(digits) <= 12 and len(raw) <= len(digits) + 2:
        return "a decimal length"
    text = _text(raw)
    if text is not None:
        shown = text if len(text) <= 40 else text[:40] + "..."
        return f"raw text {shown!r}"
    return "binary data that is not a frame"
