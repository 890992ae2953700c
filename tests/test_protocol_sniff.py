"""The first-bytes classifier names what a foreign peer sent, and never a real frame."""

from __future__ import annotations

import json
import struct

from hypothesis import given
from hypothesis import strategies as st

from sockhub.lab.formats import DEFAULT_BASE_PORT, FORMATS
from sockhub.protocol import encode_frame
from sockhub.protocol.sniff import (
    LAB_BASE_PORT,
    LAB_PORT_SPAN,
    describe_foreign,
    lab_hint,
    looks_like_frame_start,
)


def test_frames_are_not_foreign() -> None:
    frame = encode_frame({"op": "hello", "proto": 1})
    assert looks_like_frame_start(frame)
    for n in range(1, len(frame) + 1):
        assert describe_foreign(frame[:n]) is None


@given(
    st.dictionaries(st.text(min_size=1, max_size=8), st.integers(), max_size=4),
    st.binary(max_size=64),
)
def test_any_frame_is_not_foreign(header: dict[str, int], body: bytes) -> None:
    assert describe_foreign(encode_frame({"op": "x", **header}, body)) is None


def test_course_shapes() -> None:
    assert describe_foreign(b"hello world\n") == "raw text 'hello world\\n'"
    assert describe_foreign("你好".encode("gbk") * 3) is not None
    assert (
        describe_foreign(struct.pack("i", 17)) == "a little-endian length prefix (struct.pack('i'))"
    )
    header = json.dumps({"cmd": "put", "filename": "a.txt", "filesize": 3}).encode()
    said = describe_foreign(struct.pack("i", len(header)) + header)
    assert said is not None and "course JSON header" in said and "filename" in said
    assert describe_foreign(b"1234") == "a decimal length"
    assert describe_foreign(b"HTTP/1.1 400 Bad Request\r\n") == "HTTP"
    assert describe_foreign(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n") == "HTTP"
    assert describe_foreign(b"\x16\x03\x01\x02\x00\x01") is not None
    assert describe_foreign(b"SSH-2.0-OpenSSH_9.2\r\n") == "an SSH banner"
    assert describe_foreign(b"\xff\xfe\x00\x01\x80\x81") == "binary data that is not a frame"


def test_short_input_waits_unless_complete() -> None:
    assert describe_foreign(b"ok") is None
    assert describe_foreign(b"ok", complete=True) == "raw text 'ok'"
    assert describe_foreign(b"") is None


def test_lab_hint_names_every_course_listener_port() -> None:
    assert lab_hint() == "`sockhub lab serve` (ports 9700-9725)"
    assert DEFAULT_BASE_PORT == LAB_BASE_PORT
    assert sorted(f.offset for f in FORMATS) == list(range(LAB_PORT_SPAN))
    assert lab_hint(10000) == "`sockhub lab serve` (ports 10000-10025)"
