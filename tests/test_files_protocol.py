"""The sans-IO parts files rely on: the path rules, and streamed bodies read around the decoder."""

from __future__ import annotations

import pytest

from sockhub.protocol.errors import FileBadPath
from sockhub.protocol.frames import BodyChunk, BodyEnd, Decoder, Frame, FrameStart, encode_frame
from sockhub.protocol.paths import check_name, check_path, join_path


def test_path_rules() -> None:
    assert check_path("docs/a.pdf") == ("docs", "a.pdf")
    assert check_path("", root_ok=True) == ()
    assert check_path("é/ü") == ("é", "ü")
    for bad in ("", "/a", "a/", "a//b", ".", "..", "a/../b", "a\\b", "a\x00", "a\x1b", "\x9b"):
        with pytest.raises(FileBadPath):
            check_path(bad)
    with pytest.raises(FileBadPath, match="Unicode"):
        check_path("a\udc80")  # a name os.fsdecode made from bytes that are not UTF-8
    with pytest.raises(FileBadPath):
        check_path(["a"])
    assert check_name("x" * 255) and len(check_path("/".join(["y" * 255] * 4))) == 4
    with pytest.raises(FileBadPath):
        check_name("x" * 256)
    assert join_path("", "a/", "/b") == "a/b"


def _streaming_policy(header: dict[str, object]) -> tuple[int, bool]:
    return (1 << 30, header.get("op") == "file.data")


def test_body_bytes_read_past_the_decoder() -> None:
    decoder = Decoder(policy=_streaming_policy)
    assert decoder.body_left == 0
    decoder.receive_data(encode_frame({"op": "file.data"}, b"x" * 10)[:-10] + b"abc")
    assert isinstance(decoder.next_event(), FrameStart)
    assert decoder.body_left == 0  # three body bytes are still buffered here
    chunk = decoder.next_event()
    assert isinstance(chunk, BodyChunk) and chunk.data == b"abc"
    assert decoder.next_event() is None
    assert decoder.body_left == 7
    decoder.body_received(5)  # read into a buffer of the caller's own
    assert decoder.body_left == 2 and decoder.next_event() is None
    with pytest.raises(ValueError):
        decoder.body_received(3)
    decoder.body_received(2)
    assert isinstance(decoder.next_event(), BodyEnd)
    decoder.receive_data(encode_frame({"op": "ping", "id": 1}))
    event = decoder.next_event()
    assert isinstance(event, Frame) and event.header["op"] == "ping"


def test_whole_reads_of_body_are_not_copied() -> None:
    decoder = Decoder(policy=_streaming_policy)
    decoder.receive_data(encode_frame({"op": "file.data"}, b"x" * 8)[:-8])
    assert isinstance(decoder.next_event(), FrameStart)
    data = b"12345678" + encode_frame({"op": "ping", "id": 2})
    part = data[:5]
    decoder.receive_data(part)
    chunk = decoder.next_event()
    assert isinstance(chunk, BodyChunk) and chunk.data is part
    decoder.receive_data(data[5:])  # the body's end and the next frame in one read
    chunk = decoder.next_event()
    assert isinstance(chunk, BodyChunk) and chunk.data == b"678"
    assert isinstance(decoder.next_event(), BodyEnd)
    event = decoder.next_event()
    assert isinstance(event, Frame) and event.header["id"] == 2
