"""The talk state machine, driven step by step with a hand-held clock: no sockets, no sleeps."""

from __future__ import annotations

import pytest

from sockhub.client.address import Address
from sockhub.protocol.frames import encode_frame
from sockhub.talk import (
    MAX_DATAGRAM,
    TEXT_MAX,
    UNCHECKED,
    UNVERIFIED,
    VERIFIED,
    Delivered,
    Entry,
    NotDelivered,
    Received,
    TalkCore,
    TalkError,
)
from sockhub.talk.core import PeerKey
from sockhub.talk.wire import decode, encode_msg

A = ("127.0.0.1", 4001)
B = ("127.0.0.1", 4002)
MALLORY = ("127.0.0.1", 4666)
KEY = b"k" * 32


class Book:
    """A Directory with fixed entries (what the asyncio layer builds from the address book)."""

    def __init__(self, *entries: tuple[str, tuple[str, int], bytes | None]) -> None:
        self.entries = {n: Entry(n, Address(a[0], a[1]), k) for n, a, k in entries}

    def by_addr(self, peer: PeerKey) -> Entry | None:
        return next(
            (e for e in self.entries.values() if (e.address.host, e.address.port) == peer), None
        )

    def by_name(self, name: str) -> Entry | None:
        return self.entries.get(name)


def only(core: TalkCore) -> tuple[bytes, object]:
    out = core.datagrams()
    assert len(out) == 1, out
    return out[0]


def test_message_ack_delivered() -> None:
    alice, bob = TalkCore("alice", first_id=7), TalkCore("bob")
    mid = alice.send(B, "hi bob", now=0.0, ts=1_763_800_000.5)
    data, to = only(alice)
    assert (mid, to) == (7, B)
    got = bob.receive(data, A, now=0.01)
    assert isinstance(got, Received)
    assert (got.id, got.sender, got.text, got.ts, got.trust, got.name) == (
        7,
        "alice",
        "hi bob",
        1_763_800_000.5,
        UNCHECKED,
        None,
    )
    ack, to = only(bob)
    assert to == A
    assert alice.receive(ack, B, now=0.02) == Delivered(7, B, 1)
    assert alice.pending == 0 and alice.next_deadline() is None
    assert alice.send(B, "next", now=1.0) == 8  # ids are consecutive per sender


def test_lost_ack_is_retried_and_the_message_shown_once() -> None:
    alice, bob = TalkCore("alice"), TalkCore("bob")
    mid = alice.send(B, "once", now=0.0)
    first, _ = only(alice)
    assert isinstance(bob.receive(first, A, now=0.0), Received)
    only(bob)  # the ack, lost on its way
    assert alice.next_deadline() == 0.25
    assert alice.timeout(0.2) == [] and alice.datagrams() == []  # not due yet
    assert alice.timeout(0.25) == []
    again, _ = only(alice)
    assert again == first  # the same datagram, same id
    assert bob.receive(again, A, now=0.3) is None  # a repeat is not shown again...
    ack, _ = only(bob)  # ...but acked again
    assert alice.receive(ack, B, now=0.3) == Delivered(mid, B, 2)
    assert alice.receive(ack, B, now=0.4) is None  # a late duplicate ack changes nothing


def test_not_delivered_after_every_try_with_backoff() -> None:
    alice = TalkCore("alice", retry_initial=0.25, retry_backoff=2.0, max_tries=5)
    mid = alice.send(B, "anyone?", now=0.0)
    only(alice)
    resends = []
    now = 0.0
    while (deadline := alice.next_deadline()) is not None:
        now = deadline
        lost = alice.timeout(now)
        if lost:
            assert lost == [NotDelivered(mid, B, 5)]
            break
        only(alice)
        resends.append(now)
    assert resends == [0.25, 0.75, 1.75, 3.75]
    assert now == 7.75 and alice.pending == 0


def test_text_limit_and_datagram_limit_are_checked_before_sending() -> None:
    alice = TalkCore("alice")
    alice.send(B, "x" * TEXT_MAX, now=0.0)  # exactly at the limit
    with pytest.raises(TalkError, match="over the limit of 16384"):
        alice.send(B, "x" * (TEXT_MAX + 1), now=0.0)
    with pytest.raises(TalkError, match="control character"):
        alice.send(B, "bell\x07", now=0.0)
    assert len(alice.datagrams()) == 1 and alice.pending == 1

    big = TalkCore("alice", max_text=100_000, first_id=1)
    overhead = len(encode_msg(1, "alice", "x" * 60_000, 0.0, max_text=100_000)) - 60_000
    fits = "x" * (MAX_DATAGRAM - overhead)
    big.send(B, fits, now=0.0)
    assert len(only(big)[0]) == MAX_DATAGRAM  # exactly one full datagram is allowed
    with pytest.raises(TalkError, match="65,507"):
        big.send(B, fits + "x", now=0.0)
    assert big.datagrams() == [] and big.pending == 1


def test_signatures_verified_unverified_unchecked() -> None:
    alice = TalkCore("alice", first_id=1)
    bob = TalkCore("bob", directory=Book(("alice", A, KEY)))
    stranger = TalkCore("carol")

    alice.send(B, "signed", now=0.0, key=KEY)
    got = bob.receive(only(alice)[0], A, now=0.0)
    assert isinstance(got, Received) and (got.trust, got.name) == (VERIFIED, "alice")

    alice.send(B, "unsigned", now=0.0)
    got = bob.receive(only(alice)[0], A, now=0.0)
    assert isinstance(got, Received) and (got.trust, got.name) == (UNVERIFIED, "alice")

    alice.send(B, "wrong key", now=0.0, key=b"x" * 32)
    got = bob.receive(only(alice)[0], A, now=0.0)
    assert isinstance(got, Received) and got.trust == UNVERIFIED

    # someone else claiming to be alice, from another address: flagged, and not named alice
    forged = encode_frame(
        {"op": "talk.msg", "id": 99, "from": "alice", "ts": 0, "sig": "00" * 32}, b"send money"
    )
    got = bob.receive(forged, MALLORY, now=0.0)
    assert isinstance(got, Received) and (got.trust, got.name) == (UNVERIFIED, None)

    # alice from a new address but with the right signature: still alice
    alice.send(B, "moved", now=0.0, key=KEY)
    got = bob.receive(only(alice)[0], MALLORY, now=0.0)
    assert isinstance(got, Received) and (got.trust, got.name) == (VERIFIED, "alice")

    stranger.send(B, "hello", now=0.0)
    got = bob.receive(only(stranger)[0], ("10.0.0.9", 1), now=0.0)
    assert isinstance(got, Received) and (got.trust, got.name) == (UNCHECKED, None)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x00\x00\x00",
        b"\x00\x00\x00\x00",
        b"GET / HTTP/1.1\r\n\r\n",
        encode_frame({"op": "echo", "id": 1}),
        encode_frame({"op": "talk.msg", "from": "x", "ts": 0}, b"no id"),
        encode_frame({"op": "talk.msg", "id": 1, "ts": 0}, b"no from"),
        encode_frame({"op": "talk.msg", "id": 1, "from": "x", "ts": "now"}, b"bad ts"),
        encode_frame({"op": "talk.msg", "id": 1, "from": "x\x1b[2J", "ts": 0}, b"bad from"),
        encode_frame({"op": "talk.msg", "id": 1, "from": "x", "ts": 0}, b"\xff\xfe"),
        encode_frame({"op": "talk.msg", "id": 1, "from": "x", "ts": 0}, b"esc \x1b[31m"),
        encode_frame({"op": "talk.msg", "id": 0, "from": "x", "ts": 0}, b"id 0"),
        encode_frame({"op": "talk.ack"}),
        encode_frame({"op": "talk.msg", "id": 1, "from": "x", "ts": 0}, b"t") + b"trailing",
    ],
)
def test_garbage_is_ignored_without_an_answer(data: bytes) -> None:
    bob = TalkCore("bob")
    assert bob.receive(data, A, now=0.0) is None
    assert bob.datagrams() == [] and bob.ignored == 1


def test_ack_only_counts_from_the_address_we_sent_to() -> None:
    alice = TalkCore("alice", first_id=5)
    alice.send(B, "hi", now=0.0)
    alice.datagrams()
    fake = encode_frame({"op": "talk.ack", "re": 5})
    assert alice.receive(fake, MALLORY, now=0.0) is None
    assert alice.pending == 1 and alice.ignored == 1
    assert alice.receive(fake, ("::ffff:127.0.0.1", 4002, 0, 0), now=0.0) == Delivered(
        5, B, 1
    )  # the same peer seen through a dual-stack socket


def test_seen_ids_are_bounded_in_time_and_count() -> None:
    alice, bob = TalkCore("alice", first_id=1), TalkCore("bob", seen_for=10.0, max_seen=2)
    alice.send(B, "one", now=0.0)
    one = only(alice)[0]
    assert bob.receive(one, A, now=0.0) is not None
    assert bob.receive(one, A, now=9.9) is None  # still remembered
    assert bob.receive(one, A, now=10.1) is not None  # forgotten after seen_for
    for text in ("two", "three"):
        alice.send(B, text, now=11.0)
        assert bob.receive(only(alice)[0], A, now=11.0) is not None
    assert bob.receive(one, A, now=11.0) is not None  # pushed out: at most max_seen kept


def test_a_reader_that_is_behind_leaves_messages_unacked() -> None:
    alice, bob = TalkCore("alice"), TalkCore("bob")
    alice.send(B, "later", now=0.0)
    data = only(alice)[0]
    assert bob.receive(data, A, now=0.0, accept=False) is None
    assert bob.datagrams() == [] and bob.refused == 1  # no ack, so alice will resend
    assert isinstance(bob.receive(data, A, now=0.5), Received)  # and it is shown then


def test_pending_limit_at_the_limit() -> None:
    alice = TalkCore("alice", max_pending=3)
    for i in range(3):
        alice.send(B, str(i), now=0.0)
    with pytest.raises(TalkError, match="waiting for an ack"):
        alice.send(B, "3", now=0.0)


def test_wire_round_trip_and_names() -> None:
    data = encode_msg(42, "ålice", "héllo\tworld\n", 1.5, KEY)
    msg = decode(data)
    assert (msg.id, msg.sender, msg.text, msg.ts) == (42, "ålice", "héllo\tworld\n", 1.5)  # type: ignore[union-attr]
    with pytest.raises(TalkError):
        TalkCore("")
    with pytest.raises(TalkError):
        TalkCore("x" * 65)
    with pytest.raises(TalkError, match="not valid UTF-8"):
        encode_msg(1, "a", "\udcff", 0.0)
