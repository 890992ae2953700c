"""Header rules as a client meets them over a real socket."""

from __future__ import annotations

from .conftest import RawPeer, RunningServer, raw_prefix


def test_unknown_key_with_a_number_beyond_a_double_is_ignored(srv: RunningServer) -> None:
    peer = RawPeer(srv.port)
    for number in (b"1e400", b"-1e400", b"9" * 5000):
        header = b'{"op":"echo","id":1,"x":' + number + b',"size":2}'
        peer.send(raw_prefix(len(header)) + header + b"hi")
        reply = peer.frame()
        assert reply.header == {"op": "echo", "re": 1, "size": 2} and reply.body == b"hi"
    header = b'{"op":"echo","id":1e400}'  # a known field holding one is ill-typed, not fatal
    peer.send(raw_prefix(len(header)) + header)
    error = peer.frame().header
    assert error["code"] == "bad.request" and error["fatal"] is False
    header = b'{"op":"echo","id":2}'
    peer.send(raw_prefix(len(header)) + header)
    assert peer.frame().header["re"] == 2
    peer.close()
