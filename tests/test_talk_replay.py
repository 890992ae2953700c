"""A captured signed talk message, re-sent later, from elsewhere or re-stamped, on real
UDP sockets: it is flagged, never shown as verified again (PROTOCOL.md section 9)."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

from sockhub.protocol.frames import decode_datagram, encode_frame
from sockhub.talk import REPLAYED, STALE, UNVERIFIED, VERIFIED, AddressBook, TalkPeer
from sockhub.talk.wire import encode_msg

KEY = b"s" * 32


def udp() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(10)
    return s


async def test_a_captured_message_is_never_verified_twice(tmp_path: Path) -> None:
    bob = await TalkPeer.open("127.0.0.1:0", "bob", book=AddressBook(tmp_path / "b.toml"))
    alice = await TalkPeer.open("127.0.0.1:0", "alice", book=AddressBook(tmp_path / "a.toml"))
    taps = [udp() for _ in range(4)]
    try:
        assert alice.book is not None and bob.book is not None
        entry = alice.book.add("bob", f"127.0.0.1:{taps[0].getsockname()[1]}", KEY)  # via the tap
        await alice.lookup_entry(entry)
        await bob.lookup_entry(bob.book.add("alice", f"127.0.0.1:{alice.address[1]}", KEY))
        alice.send((await alice.lookup("bob"))[0], "pay carol 5", KEY)
        captured = await asyncio.to_thread(taps[0].recv, 65536)
        bob_addr = ("127.0.0.1", bob.address[1])

        taps[0].sendto(captured, bob_addr)  # passed on: the first showing is genuine
        first = await bob.next_message()
        assert (first.text, first.trust, first.name) == ("pay carol 5", VERIFIED, "alice")

        taps[1].sendto(captured, bob_addr)  # the same bytes from another port
        again = await bob.next_message()
        assert (again.text, again.trust) == ("pay carol 5", REPLAYED)

        frame = decode_datagram(captured, max_body=65536)
        restamped = encode_frame({**frame.header, "ts": time.time() + 1}, frame.body)
        taps[2].sendto(restamped, bob_addr)  # a new time under the old signature
        assert (await bob.next_message()).trust == UNVERIFIED

        old = encode_msg(frame.header["id"] + 1, "alice", "pay carol 500", time.time() - 600, KEY)
        taps[3].sendto(old, bob_addr)  # signed right, ten minutes ago
        stale = await bob.next_message()
        assert (stale.text, stale.trust) == ("pay carol 500", STALE)
    finally:
        for tap in taps:
            tap.close()
        alice.close()
        bob.close()
