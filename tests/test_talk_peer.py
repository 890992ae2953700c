"""Two real talk peers on loopback UDP: delivery, a lost ack retried, refusals, forgeries."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sockhub.cli.talk_session import render
from sockhub.protocol.frames import encode_frame
from sockhub.talk import (
    UNVERIFIED,
    VERIFIED,
    AddressBook,
    Delivered,
    NotDelivered,
    Received,
    TalkError,
    TalkPeer,
)

KEY = b"s" * 32
FAST = {"retry_initial": 0.02, "max_tries": 3}


def where(peer: TalkPeer) -> str:
    host, port = peer.address
    return f"{host}:{port}"


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[tuple[TalkPeer, TalkPeer]]:
    """alice and bob, each with the other in its book under a shared key."""
    alice = await TalkPeer.open("127.0.0.1:0", "alice", book=AddressBook(tmp_path / "a.toml"))
    bob = await TalkPeer.open("127.0.0.1:0", "bob", book=AddressBook(tmp_path / "b.toml"))
    for me, other, name in ((alice, bob, "bob"), (bob, alice, "alice")):
        assert me.book is not None
        entry = me.book.add(name, where(other), KEY)
        await me.lookup_entry(entry)
    yield alice, bob
    alice.close()
    bob.close()


async def test_two_peers_exchange_messages(pair: tuple[TalkPeer, TalkPeer]) -> None:
    alice, bob = pair
    outcome = await alice.say("bob", "hello bob")
    assert isinstance(outcome, Delivered) and outcome.tries == 1
    got = await bob.next_message()
    assert (got.text, got.sender, got.name, got.trust) == ("hello bob", "alice", "alice", VERIFIED)
    reply = await bob.say("alice", "hi alice\nsecond line")
    assert isinstance(reply, Delivered)
    assert (await alice.next_message()).text == "hi alice\nsecond line"


async def test_a_lost_ack_is_retried(pair: tuple[TalkPeer, TalkPeer]) -> None:
    alice, bob = pair
    bob.drop_next("talk.ack")
    outcome = await alice.say("bob", "are you there?")
    assert isinstance(outcome, Delivered) and outcome.tries == 2  # sent twice, acked once
    assert (await bob.next_message()).text == "are you there?"
    assert bob.messages.empty()  # the resent copy was acked but not shown again


async def test_not_delivered_when_nobody_answers() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as hole:
        hole.bind(("127.0.0.1", 0))  # receives, never acks
        port = hole.getsockname()[1]
        alice = await TalkPeer.open("127.0.0.1:0", "alice", **FAST)
        try:
            outcome = await alice.say(f"127.0.0.1:{port}", "into the void")
        finally:
            alice.close()
    assert isinstance(outcome, NotDelivered) and outcome.tries == 3


async def test_oversized_message_is_refused_before_sending(
    pair: tuple[TalkPeer, TalkPeer],
) -> None:
    alice, _bob = pair
    with pytest.raises(TalkError, match="over the limit"):
        await alice.say("bob", "x" * 16_385)
    assert alice.core.pending == 0


async def test_forged_signature_is_flagged_and_garbage_ignored(
    pair: tuple[TalkPeer, TalkPeer],
) -> None:
    _alice, bob = pair
    host, port = bob.address
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as mallory:
        mallory.bind(("127.0.0.1", 0))
        mallory.settimeout(10)
        for junk in (b"", b"\x00\x00\x00\x05{}", b"\xff" * 100, encode_frame({"op": "ping"})):
            mallory.sendto(junk, (host, port))
        forged = {"op": "talk.msg", "id": 1, "from": "alice", "ts": 0, "sig": "ab" * 32}
        mallory.sendto(encode_frame(forged, "it's me, alice \u202eevil".encode()), (host, port))
        got = await bob.next_message()
        ack = mallory.recv(1000)
    assert ack == encode_frame({"op": "talk.ack", "re": 1})  # forged or not, it arrived
    assert (got.trust, got.name) == (UNVERIFIED, None)
    assert bob.core.ignored == 4
    shown = render(got)
    assert "UNVERIFIED" in shown and '"alice"' in shown and "\\u202e" in shown
    assert "\u202e" not in shown


async def test_unknown_peer_and_bad_listen_are_clear_errors(tmp_path: Path) -> None:
    alice = await TalkPeer.open("127.0.0.1:0", "alice", book=AddressBook(tmp_path / "a.toml"))
    try:
        with pytest.raises(TalkError, match="not in the address book"):
            await alice.say("nobody", "hi")
    finally:
        alice.close()
    with pytest.raises(ValueError, match="HOST:PORT"):
        await TalkPeer.open("127.0.0.1", "alice")


def test_render_escapes_peer_text() -> None:
    msg = Received(("10.0.0.1", 5), 1, "eve\u200b", 0.0, "a\tb\nc\\d", VERIFIED, None)
    shown = render(msg)
    assert shown.endswith('10.0.0.1:5 "eve\\u200b" [verified]: a\tb\n    c\\\\d')


async def test_many_messages_each_end_in_exactly_one_outcome(
    pair: tuple[TalkPeer, TalkPeer],
) -> None:
    alice, bob = pair
    addr, entry = await alice.lookup("bob")
    assert entry is not None
    futures = [alice.send(addr, f"m{i}", entry.key)[1] for i in range(200)]
    outcomes = await asyncio.gather(*futures)
    assert all(isinstance(o, Delivered) for o in outcomes)
    texts = {(await bob.next_message()).text for _ in range(200)}
    assert texts == {f"m{i}" for i in range(200)} and bob.messages.empty()
