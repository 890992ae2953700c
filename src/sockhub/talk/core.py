"""The talk state machine (PROTOCOL.md section 9), sans-IO: datagrams and clock in, events out.

UDP loses, duplicates and reorders datagrams and says nothing about it. This core makes
loss visible: every message is resent with a growing delay until its ack arrives, and
ends as exactly one ``Delivered`` or ``NotDelivered``; a resent message the peer already
has is acked again but shown once. It never reads a clock or a socket: the caller passes
``now`` and sends what ``datagrams()`` hands back, so tests drive it step by step.
"""

from __future__ import annotations

import secrets
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Protocol

from .book import Entry
from .wire import (
    TEXT_MAX,
    Garbage,
    TalkAck,
    TalkError,
    check_name,
    decode,
    encode_ack,
    encode_msg,
    signed_by,
)

__all__ = [
    "REPLAYED",
    "STALE",
    "UNCHECKED",
    "UNVERIFIED",
    "VERIFIED",
    "Delivered",
    "Directory",
    "NotDelivered",
    "Outcome",
    "PeerKey",
    "Received",
    "TalkCore",
    "peer_key",
]

PeerKey = tuple[str, int]

VERIFIED = "verified"
"""We share a key with the sender and the signature is right."""
UNVERIFIED = "unverified"
"""We share a key with the peer it came from or claims to be, and the signature is missing or wrong."""
UNCHECKED = "unchecked"
"""We share no key with the sender, so nothing can be checked."""
STALE = "stale"
"""Signed right, but its ``ts`` is further than ``max_skew`` from our clock: a capture
re-sent later, or a sender whose clock is wrong. Never shown as verified."""
REPLAYED = "replayed"
"""Signed right, but that signer's message ``id`` was already shown (from any address):
a capture re-sent. Never shown as verified."""


def peer_key(addr: Any) -> PeerKey:
    """A socket address as a comparable (host, port); IPv4-mapped IPv6 as plain IPv4."""
    host = str(addr[0])
    if host.startswith("::ffff:") and "." in host:
        host = host[7:]
    return host, int(addr[1])


class Directory(Protocol):
    """Who is who: the address book, with its addresses resolved."""

    def by_addr(self, peer: PeerKey) -> Entry | None: ...

    def by_name(self, name: str) -> Entry | None: ...


class _NoOne:
    def by_addr(self, peer: PeerKey) -> Entry | None:
        return None

    def by_name(self, name: str) -> Entry | None:
        return None


@dataclass(frozen=True, slots=True)
class Received:
    """A new message to show (a repeat of one already shown never becomes an event)."""

    addr: Any
    id: int
    sender: str
    ts: float
    text: str
    trust: str
    name: str | None
    """The book name that vouches for the sender: its address, or its key when signed."""


@dataclass(frozen=True, slots=True)
class Delivered:
    id: int
    addr: Any
    tries: int


@dataclass(frozen=True, slots=True)
class NotDelivered:
    id: int
    addr: Any
    tries: int


Outcome = Delivered | NotDelivered


@dataclass(slots=True)
class _Pending:
    addr: Any
    peer: PeerKey
    datagram: bytes
    tries: int
    deadline: float


class TalkCore:
    """One talk endpoint's protocol state; every limit is a keyword with a safe default.

    ``retry_initial`` seconds after the first send the message goes again, then after
    ``retry_backoff`` times as long, up to ``max_tries`` sends in all; the last wait is
    as long as the next resend would have been. Seen ids are remembered for ``seen_for``
    seconds (longer than a sender's whole resend window) and at most ``max_seen`` of them.

    A signed message counts as verified only while its ``ts`` is within ``max_skew``
    seconds of our wall clock and its (signer, id) has not been shown before from any
    address; signed ids are remembered for ``2 * max_skew`` (then ``ts`` alone rules the
    capture out), at most ``max_seen`` of them, so the two checks leave no gap.
    """

    def __init__(
        self,
        name: str,
        *,
        directory: Directory | None = None,
        max_text: int = TEXT_MAX,
        retry_initial: float = 0.25,
        retry_backoff: float = 2.0,
        max_tries: int = 5,
        max_pending: int = 256,
        seen_for: float = 120.0,
        max_seen: int = 4096,
        max_skew: float = 60.0,
        first_id: int | None = None,
    ) -> None:
        if max_tries < 1 or retry_initial <= 0 or retry_backoff < 1:
            raise ValueError("max_tries >= 1, retry_initial > 0 and retry_backoff >= 1")
        self.name = check_name(name)
        self.directory: Directory = directory or _NoOne()
        self.max_text = max_text
        self.retry_initial = retry_initial
        self.retry_backoff = retry_backoff
        self.max_tries = max_tries
        self.max_pending = max_pending
        self.seen_for = seen_for
        self.max_seen = max_seen
        self.max_skew = max_skew
        # a random start keeps ids unique across restarts, which the peer's dedup relies on
        self._next_id = first_id if first_id is not None else secrets.randbelow(2**52) + 1
        self._pending: dict[int, _Pending] = {}
        self._seen: OrderedDict[tuple[PeerKey, int], float] = OrderedDict()
        self._signed: OrderedDict[tuple[str, int], float] = OrderedDict()
        """(signer's book name, id) of verified messages shown, with when to forget them."""
        self._outbox: list[tuple[bytes, Any]] = []
        self.ignored = 0
        """Datagrams dropped as garbage, stray acks included (for tests and curiosity)."""
        self.refused = 0
        """New messages left unacked because the reader was behind (``accept`` False)."""

    # sending ---------------------------------------------------------------------------

    def send(
        self,
        addr: Any,
        text: str,
        now: float,
        key: bytes | None = None,
        *,
        ts: float | None = None,
    ) -> int:
        """Queue ``text`` for ``addr`` and return its id; TalkError before anything is sent.

        ``now`` is the clock the deadlines run on (monotonic); ``ts`` the wall-clock time
        the message carries (default ``now``).
        """
        if len(self._pending) >= self.max_pending:
            raise TalkError(f"{self.max_pending} messages are still waiting for an ack; wait")
        mid = self._next_id
        stamp = now if ts is None else ts
        datagram = encode_msg(mid, self.name, text, stamp, key, max_text=self.max_text)
        self._next_id = mid + 1
        self._pending[mid] = _Pending(addr, peer_key(addr), datagram, 1, now + self.retry_initial)
        self._outbox.append((datagram, addr))
        return mid

    def datagrams(self) -> list[tuple[bytes, Any]]:
        """What to send now, as (payload, address) pairs; the caller sends them in order."""
        out, self._outbox = self._outbox, []
        return out

    @property
    def pending(self) -> int:
        return len(self._pending)

    def next_deadline(self) -> float | None:
        """When ``timeout`` next has work to do, or None when nothing waits for an ack."""
        return min((p.deadline for p in self._pending.values()), default=None)

    def timeout(self, now: float) -> list[NotDelivered]:
        """Resend what is due and give up on what has had all its tries."""
        lost = []
        for mid, p in list(self._pending.items()):
            if p.deadline > now:
                continue
            wait = self.retry_initial * self.retry_backoff**p.tries
            if p.tries >= self.max_tries:
                del self._pending[mid]
                lost.append(NotDelivered(mid, p.addr, p.tries))
                continue
            p.tries += 1
            p.deadline = now + wait
            self._outbox.append((p.datagram, p.addr))
        return lost

    # receiving -------------------------------------------------------------------------

    def receive(
        self,
        data: bytes,
        addr: Any,
        now: float,
        *,
        wall: float | None = None,
        accept: bool = True,
    ) -> Received | Delivered | None:
        """Handle one datagram: an ack ends a send, a message is acked and shown once.

        ``wall`` is the wall-clock time a signed message's ``ts`` is checked against
        (default ``now``, as ``send``'s ``ts``). With ``accept`` False (the reader is too
        far behind) a new message is neither acked nor remembered, so its sender resends
        it later instead of hearing "delivered" for a message nobody will see.
        """
        try:
            item = decode(data, max_text=self.max_text)
        except Garbage:
            self.ignored += 1
            return None
        peer = peer_key(addr)
        if isinstance(item, TalkAck):
            p = self._pending.get(item.id)
            if p is None or p.peer != peer:
                self.ignored += 1  # late (already delivered), or not from whom we sent to
                return None
            del self._pending[item.id]
            return Delivered(item.id, p.addr, p.tries)
        self._forget_old(self._seen, now)
        self._forget_old(self._signed, now)
        seen = (peer, item.id)
        if seen in self._seen:
            self._outbox.append((encode_ack(item.id), addr))  # again: our last ack may be lost
            return None
        if not accept:
            self.refused += 1
            return None
        self._outbox.append((encode_ack(item.id), addr))
        self._seen[seen] = now + self.seen_for
        entry = self.directory.by_addr(peer)
        known_address = entry is not None
        if entry is None:
            entry = self.directory.by_name(item.sender)
            if entry is not None and entry.key is None:
                entry = None  # a name alone proves nothing
        if entry is None or entry.key is None:
            trust = UNCHECKED
        elif not signed_by(entry.key, item):
            trust = UNVERIFIED
        else:
            trust = self._fresh(entry.name, item.id, item.ts, now, now if wall is None else wall)
        vouched = entry is not None and (known_address or trust == VERIFIED)
        return Received(
            addr,
            item.id,
            item.sender,
            item.ts,
            item.text,
            trust,
            entry.name if entry is not None and vouched else None,
        )

    def _fresh(self, signer: str, mid: int, ts: float, now: float, wall: float) -> str:
        """VERIFIED for a rightly signed message that is new and timely, else why not."""
        if abs(wall - ts) > self.max_skew:
            return STALE
        key = (signer, mid)
        if key in self._signed:
            return REPLAYED
        self._signed[key] = now + 2 * self.max_skew
        return VERIFIED

    def _forget_old(self, seen: OrderedDict[Any, float], now: float) -> None:
        while seen:
            first = next(iter(seen))
            if seen[first] > now and len(seen) < self.max_seen:
                break
            del seen[first]
