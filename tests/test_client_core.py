"""The sans-IO client core in memory: bytes in, events out, no socket anywhere."""

from __future__ import annotations

import base64
import os
from typing import Any

import pytest

from sockhub.protocol.client import DEADLINE_SLACK, ClientConnection
from sockhub.protocol.client_errors import (
    ConnectionBroken,
    ConnectionClosed,
    LocalProtocolError,
    NotSockhubServer,
    QueueFull,
    RemoteProtocolError,
    RequestTimeout,
)
from sockhub.protocol.client_events import Data, Failed, Fatal, Final, Partial, Push
from sockhub.protocol.errors import BadRequest, LimitIdle
from sockhub.protocol.frames import Decoder, Frame, encode_frame, encode_header

HELLO = {
    "op": "hello",
    "proto": 1,
    "nonce": base64.b64encode(os.urandom(32)).decode(),
    "auth": ["hmac-sha256"],
    "limits": {"idle_timeout": 30, "max_body": 100},
}


def core(**kwargs: Any) -> ClientConnection:
    c = ClientConnection(peer="srv", **kwargs)
    c.start(0.0, 5.0)
    c.receive_data(encode_frame(dict(HELLO)))
    assert c.next_event() is None and c.hello is not None
    return c


def events(c: ClientConnection, *frames: bytes) -> list[Any]:
    for frame in frames:
        c.receive_data(frame)
    out = []
    while (event := c.next_event()) is not None:
        out.append(event)
    return out


def sent(c: ClientConnection) -> list[dict[str, Any]]:
    decoder = Decoder()
    decoder.receive_data(c.data_to_send())
    out = []
    while isinstance(event := decoder.next_event(), Frame):
        out.append(event.header)
    return out


def test_replies_errors_and_pushes_become_typed_events() -> None:
    c = core()
    a, _ = c.request("echo", b"x")
    b, _ = c.request("time")
    got = events(
        c,
        encode_frame({"op": "echo", "re": a}, b"x"),
        encode_frame({"op": "error", "re": b, "code": "bad.request", "message": "no"}),
        encode_frame({"op": "chat.msg", "room": "r"}, b"hi"),
    )
    assert isinstance(got[0], Final) and got[0].rid == a and got[0].reply.body == b"x"
    assert isinstance(got[1], Failed) and isinstance(got[1].error, BadRequest)
    assert isinstance(got[2], Push) and got[2].reply.body == b"hi"


def test_a_stream_gives_partials_chunks_then_its_final() -> None:
    c = core()
    rid, _ = c.request("file.get", partial=frozenset({"file.data"}), path="f")
    got = events(
        c,
        encode_header({"op": "file.data", "re": rid}, 3) + b"abc",
        encode_frame({"op": "file.done", "re": rid}),
    )
    assert [type(e) for e in got] == [Partial, Data, Final]
    assert got[1].chunk == b"abc"


def test_pings_are_answered_and_keepalive_pings_sent_on_time() -> None:
    c = core()
    assert events(c, encode_frame({"op": "ping", "id": 7})) == []
    assert sent(c) == [{"op": "pong", "re": 7}]
    due = c.next_deadline()
    assert due == 10.0  # a third of the idle timeout after the start
    c.tick(due)
    assert sent(c) == [{"op": "ping"}]
    assert c.next_deadline() == 20.0


@pytest.mark.parametrize("re", [[1], {"a": 1}, "1", None])
def test_a_reply_with_a_bad_re_is_fatal_and_remote(re: Any) -> None:
    c = core()
    c.request("echo")
    header = {"op": "echo", "re": re} if re is not None else {"re": 1}
    (event,) = events(c, encode_frame(header))
    assert isinstance(event, Fatal) and isinstance(event.error, RemoteProtocolError)
    with pytest.raises(RemoteProtocolError):
        c.request("echo")


def test_an_undecodable_frame_is_a_remote_protocol_error_not_internal() -> None:
    c = core()
    (event,) = events(c, b"\x00\x00\x00\x03abc")
    assert isinstance(event.error, RemoteProtocolError) and event.error.code == "frame.bad"


def test_request_deadlines_fail_only_that_request() -> None:
    c = core(keepalive=False)
    late, _ = c.request("echo", deadline=1.0)
    fine, _ = c.request("echo", deadline=2.0)
    assert c.next_deadline() == 1.0 + DEADLINE_SLACK
    c.tick(1.5)
    (event,) = events(c, encode_frame({"op": "echo", "re": late}))[:1]
    assert isinstance(event, Failed) and isinstance(event.error, RequestTimeout)
    assert events(c, encode_frame({"op": "echo", "re": fine}))[0].rid == fine
    assert c.next_deadline() is None


def test_deadlines_close_together_expire_in_one_tick_and_answered_ones_are_forgotten() -> None:
    c = core(keepalive=False)
    answered, _ = c.request("echo", deadline=1.0)
    close = [c.request("echo", deadline=2.0 + i * DEADLINE_SLACK / 10)[0] for i in range(5)]
    events(c, encode_frame({"op": "echo", "re": answered}))
    c.tick(c.next_deadline() or 0.0)  # the answered one's time: nothing expires
    assert c.next_event() is None
    assert c.next_deadline() == 2.0 + DEADLINE_SLACK
    c.tick(2.0 + DEADLINE_SLACK)
    assert [e.rid for e in events(c)] == close
    assert c.next_deadline() is None


def test_an_unread_stream_overflows_alone() -> None:
    c = core(queue_size=2)
    rid, _ = c.request("exec.run", partial=frozenset({"exec.out"}))
    other, _ = c.request("echo")
    out = encode_frame({"op": "exec.out", "re": rid}, b"o")
    got = events(c, out, out, out, out, encode_frame({"op": "echo", "re": other}))
    assert [type(e) for e in got] == [Partial, Partial, Failed, Final]
    assert isinstance(got[2].error, QueueFull) and got[3].rid == other
    c.taken(rid)
    assert events(c, encode_frame({"op": "exec.exit", "re": rid})) == []  # dropped


def test_pushes_past_the_bound_are_dropped_and_said_once() -> None:
    c = core(push_queue_size=2)
    push = encode_frame({"op": "chat.msg"})
    got = events(c, push, push, push, push)
    assert [type(e) for e in got] == [Push, Push, Failed]
    c.push_taken()
    assert [type(e) for e in events(c, push)] == [Push]


def test_hello_problems_name_the_peer() -> None:
    c = ClientConnection(peer="srv")
    c.start(0.0, 2.0)
    c.receive_data(b"GET / HTTP/1.1\r\n")
    (event,) = events(c)
    assert isinstance(event.error, NotSockhubServer) and "HTTP" in str(event.error)
    quiet = ClientConnection(peer="srv")
    quiet.start(0.0, 2.0)
    assert quiet.next_deadline() == 2.0
    quiet.tick(2.0)
    assert "no hello within 2 s" in str(events(quiet)[0].error)
    refused = ClientConnection(peer="srv")
    refused.receive_data(encode_frame({"op": "error", "code": "limit.idle", "fatal": True}))
    assert isinstance(events(refused)[0].error, LimitIdle)


def test_eof_is_closed_after_bye_and_broken_otherwise() -> None:
    c = core()
    c.receive_eof()
    assert isinstance(events(c)[0].error, ConnectionBroken)
    d = core()
    d.frame("bye")
    d.receive_eof()
    assert isinstance(events(d)[0].error, ConnectionClosed)


def test_a_body_over_the_servers_max_is_refused_before_sending() -> None:
    with pytest.raises(LocalProtocolError, match="max_body"):
        core().request("echo", b"x" * 101)
