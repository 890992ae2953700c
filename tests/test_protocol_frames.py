"""The sans-IO frame codec: limits before buffering, documented errors, any chunking."""

from __future__ import annotations

import json
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sockhub.protocol.errors import FrameBad, FrameTooLarge
from sockhub.protocol.frames import (
    MAX_DEPTH,
    BodyChunk,
    BodyEnd,
    Decoder,
    Event,
    Frame,
    FrameStart,
    decode_datagram,
    encode_frame,
)


def raw(header: bytes, body: bytes = b"") -> bytes:
    return struct.pack("!I", len(header)) + header + body


def drain(decoder: Decoder) -> list[Event]:
    events = []
    while (event := decoder.next_event()) is not None:
        events.append(event)
    return events


def decode_all(data: bytes, **kw: object) -> list[Event]:
    decoder = Decoder(**kw)  # type: ignore[arg-type]
    decoder.receive_data(data)
    return drain(decoder)


def test_round_trip_and_glued_frames() -> None:
    data = encode_frame({"op": "echo", "id": 1}, b"abc") + encode_frame({"op": "ping", "id": 2})
    events = decode_all(data)
    assert events == [
        Frame({"op": "echo", "id": 1, "size": 3}, b"abc"),
        Frame({"op": "ping", "id": 2}, b""),
    ]


def test_split_byte_by_byte() -> None:
    data = encode_frame({"op": "echo", "id": 7}, b"hello") * 3
    decoder = Decoder()
    events: list[Event] = []
    for i in range(len(data)):
        decoder.receive_data(data[i : i + 1])
        events += drain(decoder)
    assert [e.body for e in events if isinstance(e, Frame)] == [b"hello"] * 3
    assert not decoder.in_frame


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (struct.pack("!I", 0), FrameBad),
        (struct.pack("!I", 65_537), FrameTooLarge),
        (raw(b'{"op":"\xff"}'), FrameBad),
        (raw(b"\xef\xbb\xbf{}"), FrameBad),
        (raw(b"not json"), FrameBad),
        (raw(b"[1,2]"), FrameBad),
        (raw(b'"op"'), FrameBad),
        (raw(b'{"op":"x","size":"3"}'), FrameBad),
        (raw(b'{"op":"x","size":1.5}'), FrameBad),
        (raw(b'{"op":"x","size":true}'), FrameBad),
        (raw(b'{"op":"x","size":-1}'), FrameBad),
        (raw(b'{"op":"x","size":9223372036854775808}'), FrameBad),
        (raw(b'{"op":"x","size":1048577}'), FrameTooLarge),
    ],
)
def test_bad_frames_raise_documented_errors(data: bytes, error: type[Exception]) -> None:
    decoder = Decoder()
    decoder.receive_data(data)
    with pytest.raises(error):
        drain(decoder)
    with pytest.raises(error):  # the stream is dead: the boundary is lost
        decoder.next_event()


def test_header_limit_exact() -> None:
    limit = 100
    pad = b'{"op":"x","p":"' + b"a" * (limit - 17) + b'"}'
    assert len(pad) == limit
    assert decode_all(raw(pad), max_header=limit)[0].header["op"] == "x"  # type: ignore[union-attr]
    with pytest.raises(FrameTooLarge):
        decode_all(raw(pad[:-2] + b'a"}'), max_header=limit)


def test_body_limit_checked_before_body_arrives() -> None:
    decoder = Decoder(max_body=10)
    decoder.receive_data(raw(b'{"op":"x","size":10}'))
    assert decoder.next_event() is None  # at the limit: waits for the body
    decoder = Decoder(max_body=10)
    decoder.receive_data(raw(b'{"op":"x","size":11}'))  # not a single body byte sent
    with pytest.raises(FrameTooLarge):
        decoder.next_event()


def test_nesting_limit() -> None:
    ok = "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1)
    deep = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    assert decode_all(raw(f'{{"a":{ok}}}'.encode()))
    with pytest.raises(FrameBad):
        decode_all(raw(f'{{"a":{deep}}}'.encode()))
    with pytest.raises(FrameBad):
        decode_all(raw(("[" * 60_000).encode()))


def test_wide_but_shallow_header_is_fine() -> None:
    header = {"op": "x", "entries": [{"n": i} for i in range(500)]}
    assert decode_all(encode_frame(header))[0].header == header  # type: ignore[union-attr]


def test_streamed_body_events() -> None:
    decoder = Decoder(policy=lambda h: (1 << 40, h.get("op") == "file.data"))
    decoder.receive_data(encode_frame({"op": "file.data", "target": 1}, b"x" * 10)[:-4])
    events = drain(decoder)
    assert isinstance(events[0], FrameStart) and events[0].size == 10
    assert events[1:] == [BodyChunk(b"x" * 6)]
    decoder.receive_data(b"xxxx" + encode_frame({"op": "ping"}))
    events = drain(decoder)
    assert events[0] == BodyChunk(b"xxxx")
    assert isinstance(events[1], BodyEnd)
    assert events[2] == Frame({"op": "ping"}, b"")


def test_datagram() -> None:
    frame = encode_frame({"op": "echo", "id": 1}, b"hi")
    assert decode_datagram(frame).body == b"hi"
    for bad in (frame[:-1], frame + b"x", b"\x00\x00", b"\x00\x00\x00\x00"):
        with pytest.raises((FrameBad, FrameTooLarge)):
            decode_datagram(bad)


headers = st.dictionaries(
    st.text(min_size=1, max_size=8),
    st.one_of(st.integers(-(2**40), 2**40), st.text(max_size=20), st.booleans(), st.none()),
    max_size=5,
).map(lambda d: {k: v for k, v in d.items() if k != "size"} | {"op": "x"})
frames = st.lists(st.tuples(headers, st.binary(max_size=300)), min_size=1, max_size=8)


@settings(max_examples=200, deadline=None)
@given(frames, st.data())
def test_any_chunking_gives_the_same_frames(
    items: list[tuple[dict, bytes]], data: st.DataObject
) -> None:
    stream = b"".join(encode_frame(dict(h), b) for h, b in items)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=20)))
    decoder = Decoder()
    events: list[Event] = []
    last = 0
    for cut in [*cuts, len(stream)]:
        decoder.receive_data(stream[last:cut])
        events += drain(decoder)
        last = cut
    assert [(e.header, e.body) for e in events if isinstance(e, Frame)] == [
        ({**h, **({"size": len(b)} if b else {})}, b) for h, b in items
    ]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000), st.integers(1, 64))
def test_random_input_decodes_or_raises_documented_error(blob: bytes, step: int) -> None:
    decoder = Decoder(max_header=512, max_body=512)
    try:
        for i in range(0, len(blob), step):
            decoder.receive_data(blob[i : i + step])
            drain(decoder)
    except (FrameBad, FrameTooLarge):
        pass


@settings(max_examples=100, deadline=None)
@given(
    st.recursive(
        st.integers() | st.text(max_size=5),
        lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=3), c, max_size=3),
        max_leaves=40,
    )
)
def test_json_values_in_headers(value: object) -> None:
    header = json.dumps({"op": "x", "v": value}).encode()
    try:
        events = decode_all(raw(header))
    except FrameBad:
        return  # only too deep is allowed to fail
    assert events[0].header["v"] == value  # type: ignore[union-attr]


class Number(str):
    """JSON number text, written into a header as it is (any size, any exponent)."""


WIDE_NUMBERS = ["1e400", "-1e400", "1e-400", "9" * 5000, "-" + "9" * 5000, "1.5e308", "0"]


@pytest.mark.parametrize("number", WIDE_NUMBERS)
def test_unknown_key_may_hold_any_json_number(number: str) -> None:
    """Unknown keys are ignored whatever they hold: a number beyond a double (or past
    Python's integer digit limit) is valid JSON and must not make the frame bad."""
    header = f'{{"op":"echo","id":1,"x":{number},"y":[{number},{{"z":{number}}}]}}'
    frame = decode_all(raw(header.encode(), b""))[0]
    assert isinstance(frame, Frame)
    assert frame.header["op"] == "echo" and frame.header["id"] == 1
    datagram = decode_datagram(raw(header.encode()))
    assert datagram.header["id"] == 1


def test_wide_numbers_keep_every_other_check() -> None:
    big = "9" * 5000
    for bad in (
        f"[{big}]",  # still not an object
        '{"x":1e400,"y":"\xff"}',  # still UTF-8
        f'{{"x":[{big},"\xff"]}}',
        f'{{"x":1e400,"y":{"[" * MAX_DEPTH}{"]" * MAX_DEPTH}}}',  # still 32 levels at most
        f'{{"x":{"[" * MAX_DEPTH}{big}{"]" * MAX_DEPTH}}}',
        '{"x":1e400,"size":1e400}',  # size is still a non-negative integer
        '{"x":1e400,"y":',  # still whole JSON
    ):
        with pytest.raises(FrameBad):
            decode_all(raw(bad.encode("latin-1")))  # \xff: a byte, not UTF-8
    ok = f'{{"x":{"[" * (MAX_DEPTH - 1)}{big}{"]" * (MAX_DEPTH - 1)}}}'
    assert decode_all(raw(ok.encode()))


@settings(max_examples=100, deadline=None)
@given(
    st.recursive(
        st.integers()
        | st.text(max_size=5)
        | st.from_regex(
            r"-?[1-9][0-9]{0,30}(\.[0-9]{1,5})?[eE][+-]?[0-9]{1,5}", fullmatch=True
        ).map(Number)
        | st.from_regex(r"-?[1-9][0-9]{4300,4400}", fullmatch=True).map(Number),
        lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=3), c, max_size=3),
        max_leaves=10,
    )
)
def test_any_json_value_in_an_unknown_key_is_ignored(value: object) -> None:
    def render(v: object) -> str:
        if isinstance(v, Number):
            return v
        if isinstance(v, list):
            return "[" + ",".join(render(i) for i in v) + "]"
        if isinstance(v, dict):
            return "{" + ",".join(f"{json.dumps(k)}:{render(i)}" for k, i in v.items()) + "}"
        return json.dumps(v)

    header = f'{{"op":"echo","id":7,"unknown":{render(value)}}}'.encode()
    frame = decode_all(raw(header))[0]
    assert isinstance(frame, Frame) and frame.header["id"] == 7
