"""talk: peer-to-peer messages over UDP (PROTOCOL.md section 9), no server involved.

``TalkCore`` is the sans-IO state machine (ids, acks, resends, dedup, signatures);
``TalkPeer`` drives it on an asyncio UDP socket; ``AddressBook`` names the peers.
"""

from .book import AddressBook, BookError, Entry
from .core import (
    REPLAYED,
    STALE,
    UNCHECKED,
    UNVERIFIED,
    VERIFIED,
    Delivered,
    NotDelivered,
    Outcome,
    Received,
    TalkCore,
)
from .peer import TalkPeer
from .wire import MAX_DATAGRAM, TEXT_MAX, TalkError

__all__ = [
    "MAX_DATAGRAM",
    "REPLAYED",
    "STALE",
    "TEXT_MAX",
    "UNCHECKED",
    "UNVERIFIED",
    "VERIFIED",
    "AddressBook",
    "BookError",
    "Delivered",
    "Entry",
    "NotDelivered",
    "Outcome",
    "Received",
    "TalkCore",
    "TalkError",
    "TalkPeer",
]
