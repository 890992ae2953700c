"""How the Redis broker lays out its keys, scripts and payloads (no I/O).

Room keys are hash-tagged ``{room}`` so Redis Cluster keeps a room on one slot; node
keys are tagged ``{node:ID}``, reach keys ``{reach:KEY}``, the leases ``{nodes}``;
every script touches the keys of one tag only. Payloads on a room's channel: ``M<first seq> <ts> <msgpack
[[sender, text], ...]>`` for a batch of messages, ``E<seq>:<k> <JSON [kind, nick, ts,
actor, old]>`` for an event; a stream entry holds ``t`` (ts), ``d`` (msgpack
[sender, text]) and ``a`` (the bytes appended to the room before it).
"""

from __future__ import annotations

import urllib.parse
from importlib import resources
from typing import Any

import msgspec

from ...server.config import ConfigError
from .broker import Event, Message
from .history import ROW_BYTES
from .names import nick_key
from .redis_order import Item

__all__ = [
    "DM",
    "ENTRY",
    "HISTORY",
    "LEASE",
    "NODES",
    "NODE_SCRIPTS",
    "PACK",
    "REAPING",
    "ROOM_SCRIPTS",
    "Keys",
    "array_header",
    "as_str",
    "costs",
    "decode_push",
    "lua",
    "message",
    "nicks",
    "node_keys",
    "parse_url",
    "reach_key",
    "safe_url",
    "stored_messages",
]

LEASE = 5.0
"""Seconds a node's lease lasts; it is refreshed every third of that, and a crashed
node's members leave within about ``LEASE * 4 / 3``. ``?lease=SECONDS`` in the URL."""

NODES = "sockhub:{nodes}"
REAPING = "sockhub:{nodes}:reaping"
"""The node leases and the nodes being reaped: one tag, so ``claim.lua`` (which moves
nodes from one to the other) touches one Redis Cluster slot."""
HISTORY = tuple(f"sockhub:{{history}}:{name}" for name in ("trimmer", "totals", "heads", "rooms"))
"""The history index, one tag: who trims (a lease), the totals, each room's oldest kept
ts, each room's kept messages and bytes (``redis_totals``)."""
ENTRY = msgspec.json.Encoder()
_ENTRY_DECODE = msgspec.json.Decoder(dict[str, Any])
_EVENT_DECODE = msgspec.json.Decoder(tuple[str, str, float, str, str])
PACK = msgspec.msgpack.Encoder()
_UNPACK_BATCH = msgspec.msgpack.Decoder(list[tuple[str, bytes]])
_UNPACK_ONE = msgspec.msgpack.Decoder(tuple[str, bytes])
DM = msgspec.msgpack.Decoder(tuple[str, str, float, bytes, str])


ROOM_SCRIPTS = ("publish", "join", "leave", "rename", "reap", "restore", "trim")
NODE_SCRIPTS = ("lease", "claim", "index", "trimmer", "sweep")


def lua(name: str, publish: str) -> str:
    """A script's text; a room script starts with the shared prelude."""
    folder = resources.files(__package__).joinpath("lua")
    text = folder.joinpath(f"{name}.lua").read_text()
    if name in ROOM_SCRIPTS:
        text = folder.joinpath("prelude.lua").read_text() + text
    return text.replace("__PUBLISH__", publish)


def array_header(n: int) -> bytes:
    """A msgpack array header: the script glues the items after it."""
    if n < 16:
        return bytes([0x90 | n])
    if n < 1 << 16:
        return b"\xdc" + n.to_bytes(2, "big")
    return b"\xdd" + n.to_bytes(4, "big")


def costs(room: str, says: list[tuple[str, bytes]]) -> str:
    """What each message counts against ``chat_history_max_bytes``, as the publish
    script takes it (the in-process broker's ``history.cost``)."""
    base = len(room.encode()) + ROW_BYTES
    return " ".join(str(base + len(text) + len(sender.encode())) for sender, text in says)


def parse_url(url: str) -> tuple[str, float]:
    """The URL for redis-py and the lease (``?lease=SECONDS``, not a redis-py option)."""
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qsl(parts.query)
    lease = LEASE
    rest = []
    for key, value in query:
        if key == "lease":
            try:
                lease = float(value)
            except ValueError:
                raise ConfigError(f"lease={value!r} in the broker URL is not a number") from None
            if not 0.3 <= lease <= 3600:
                raise ConfigError("lease in the broker URL is between 0.3 and 3600 seconds")
        else:
            rest.append((key, value))
    return parts._replace(query=urllib.parse.urlencode(rest)).geturl(), lease


def safe_url(url: str) -> str:
    """The URL without its password, for messages and logs."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "unix":
        return f"unix://{parts.path}"
    return f"{parts.scheme}://{parts.hostname or 'localhost'}:{parts.port or 6379}"


class Keys:
    """A room's keys, in the order the scripts take them."""

    __slots__ = ("all", "chan", "log", "members", "seq")

    def __init__(self, room: str) -> None:
        tag = f"sockhub:{{{room}}}"
        self.seq, self.log, self.chan = f"{tag}:seq", f"{tag}:log", f"{tag}:chan"
        self.members = f"{tag}:members"
        self.all = [self.seq, self.log, self.chan, self.members, f"{tag}:nicks"]


def node_keys(node: str) -> tuple[str, str, str]:
    """A node's rooms, its DM reach keys, and its DM channel."""
    tag = f"sockhub:{{node:{node}}}"
    return f"{tag}:rooms", f"{tag}:keys", f"{tag}:dm"


def reach_key(key: str) -> str:
    return f"sockhub:{{reach:{key}}}"


def message(room: str, seq: int, fields: Any) -> Message:
    """A stream entry (``t`` ts, ``d`` msgpack [sender, text]) as a message: a dict from
    redis-py's XRANGE, a flat list from a script."""
    values = (
        fields if isinstance(fields, dict) else dict(zip(fields[::2], fields[1::2], strict=True))
    )
    sender, text = _UNPACK_ONE.decode(values[b"d"])
    return Message(room, seq, sender, float(values[b"t"]), text)


def as_str(raw: Any) -> str:
    """A name Redis returned (bytes: the client does not decode)."""
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def stored_messages(room: str, raw: Any) -> list[Message]:
    return [message(room, int(eid.split(b"-")[0]), fields) for eid, fields in raw]


def nicks(entries: Any) -> list[str]:
    nicks = [str(_ENTRY_DECODE.decode(raw)["n"]) for raw in entries]
    return sorted(nicks, key=lambda n: (nick_key(n), n))


def decode_push(room: str, data: bytes) -> Item:
    """A room channel's payload as the item it carries."""
    head, _, rest = data.partition(b" ")
    if head[:1] == b"M":
        seq = int(head[1:])
        ts_raw, _, packed = rest.partition(b" ")
        ts = float(ts_raw)
        msgs = tuple(
            Message(room, seq + i, sender, ts, body)
            for i, (sender, body) in enumerate(_UNPACK_BATCH.decode(packed))
        )
        return Item(seq, seq + len(msgs) - 1, messages=msgs)
    after, _, k = head[1:].partition(b":")
    kind, nick, ets, actor, old = _EVENT_DECODE.decode(rest)
    event = Event(room, kind, nick, ets, actor, old or None)
    return Item(int(after), int(after), int(k), event=event)
