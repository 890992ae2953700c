"""Every bound ``lab serve`` puts on what a course client can make it hold, in one place.

Course programs are written by students and the lab may face a class at once, so each
resource a client can tie up (a connection, a buffer, a wait, a place in a room) has a
safe default here; ``sockhub lab serve --limit NAME=VALUE`` changes one, and
docs/limits.md says what happens at each.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

__all__ = ["UDP_REPLY_CEILING", "LabLimits"]

KiB = 1024
MiB = 1024 * KiB

UDP_REPLY_CEILING = 1024
"""QUIC's bound on what an unvalidated peer may be sent; ``udp_reply_max`` may only go lower."""


@dataclass(frozen=True, kw_only=True, slots=True)
class LabLimits:
    connections_per_listener: int = 64
    idle_timeout: float = 600.0
    """A course connection that says nothing for this long is closed."""
    send_timeout: float = 30.0
    """A course client that stops reading our answer for this long is closed."""
    challenge_timeout: float = 10.0
    """``hmac-upper``: time to answer the 32-byte challenge."""
    max_line: int = 64 * KiB
    """``upper-line``: the longest line, and what the lab buffers while waiting for one."""
    max_header: int = 64 * KiB
    """The JSON header after an ``i`` length (``ftp-put``)."""
    max_upload: int = 16 * MiB
    max_download: int = 16 * MiB
    """``ftp-get``: the largest file sent to a course client (it is held in memory)."""
    chat_members: int = 64
    chat_backlog: int = 256 * KiB
    """Bytes waiting for one chat member before it is dropped as not reading."""
    bridge_backlog: int = 256
    """Course chat messages kept for the sockhub room while its server is unreachable."""
    console_wait: float = 600.0
    """``--console``: how long a course message waits for the person at the terminal."""
    console_pending: int = 16
    """``udp-qq`` with ``--console``: datagrams waiting for an answer; more are dropped."""
    exec_timeout: float = 10.0
    """Given to the sockhub exec service for each course command."""
    udp_reply_max: int = UDP_REPLY_CEILING
    udp_replies_per_sec: float = 50.0
    udp_burst: int = 100
    """Replies per second and burst per source address, over all the UDP listeners."""

    def check(self) -> LabLimits:
        """Itself, or ValueError naming the first setting that cannot be used."""
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value <= 0:
                raise ValueError(f"lab limit {f.name} must be positive, not {value}")
        if self.udp_reply_max > UDP_REPLY_CEILING:
            raise ValueError(f"lab limit udp_reply_max may not exceed {UDP_REPLY_CEILING}")
        return self
