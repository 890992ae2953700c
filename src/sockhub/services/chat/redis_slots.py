"""Which Redis Cluster node serves a key: hash slots, the slot map, redirections.

Plain logic, no I/O: ``redis_cluster.Router`` asks the cluster (``CLUSTER SLOTS``) and
feeds the answers in.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from redis.crc import REDIS_CLUSTER_HASH_SLOTS
from redis.crc import key_slot as _crc_slot

__all__ = ["SLOTS", "Address", "Redirect", "SlotMap", "key_slot", "redirect"]

SLOTS = REDIS_CLUSTER_HASH_SLOTS

Address = tuple[str, int]


def key_slot(key: str | bytes) -> int:
    """The slot of a key (CRC16 of its ``{tag}`` if it has one, as Redis computes it)."""
    return _crc_slot(key.encode() if isinstance(key, str) else key)


class Redirect(NamedTuple):
    """A ``MOVED`` (the slot lives elsewhere now) or ``ASK`` (this once: the slot is
    being migrated and the key is already at ``address``) error."""

    ask: bool
    slot: int
    address: Address


def redirect(error: str, host: str) -> Redirect | None:
    """The redirection an error reply carries (``MOVED 3999 10.0.0.6:6381``), None when
    it is another error; ``host`` (the node that answered) stands in for an empty one."""
    kind, _, rest = error.partition(" ")
    if kind not in ("MOVED", "ASK"):
        return None
    slot, _, where = rest.partition(" ")
    name, _, port = where.rpartition(":")
    return Redirect(kind == "ASK", int(slot), (name or host, int(port)))


class SlotMap:
    """Which master serves each slot, as far as the last answers said."""

    def __init__(self) -> None:
        self._owners: list[Address | None] = [None] * SLOTS

    def load(self, reply: Any, host: str) -> None:
        """Take in a ``CLUSTER SLOTS`` reply from a node reached at ``host``: rows of
        ``[first, last, [host, port, id, ...], replicas...]``."""
        owners: list[Address | None] = [None] * SLOTS
        for row in reply:
            first, last, master = int(row[0]), int(row[1]), row[2]
            name = master[0].decode() if isinstance(master[0], bytes) else str(master[0])
            address = (name if name not in ("", "?") else host, int(master[1]))
            owners[first : last + 1] = [address] * (last - first + 1)
        self._owners = owners

    def owner(self, slot: int) -> Address | None:
        return self._owners[slot]

    def move(self, slot: int, address: Address) -> None:
        """A ``MOVED`` said where the slot lives now."""
        self._owners[slot] = address

    def masters(self) -> list[Address]:
        """Every master that serves a slot, in slot order."""
        return list(dict.fromkeys(a for a in self._owners if a is not None))
