"""Every limit the server enforces, in one place, each with a safe default.

Sizes are bytes, times are seconds, counts are counts. ``docs/limits.md`` is the page
that explains them; ``hello`` advertises the ones a client has to respect.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

__all__ = ["Limits"]

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB


def _machine_memory() -> int:
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return 4 * GiB


def _share(part: int, low: int, high: int) -> int:
    """``1/part`` of the machine's memory, within ``low`` and ``high``."""
    return max(low, min(high, _machine_memory() // part))


@dataclass(frozen=True, kw_only=True, slots=True)
class Limits:
    # framing (PROTOCOL.md section 1)
    max_header: int = 65_536
    max_body: int = 1 * MiB
    # connection lifecycle (section 2)
    idle_timeout: float = 300.0
    handshake_timeout: float = 10.0
    send_timeout: float = 30.0
    max_outbound: int = 32 * MiB
    """Hard limit: bytes still queued for one client after a write attempt that cut it
    off at once as a slow consumer (Redis' pubsub client-output-buffer hard limit)."""
    outbound_soft: int = 8 * MiB
    outbound_soft_seconds: float = 30.0
    """Soft limit: a client whose backlog stays over ``outbound_soft`` for this long is
    cut off; one burst a reading client works through is not."""
    memory_bodies: int = _share(32, 64 * MiB, 2 * GiB)
    """Request bodies buffered by all connections together (1/32 of the machine's memory)."""
    memory_outbound: int = _share(16, 128 * MiB, 4 * GiB)
    """Outbound backlogs of all connections together (1/16 of the machine's memory)."""
    memory_spools: int = _share(16, 128 * MiB, 4 * GiB)
    """Upload spools of all connections together (1/16 of the machine's memory)."""
    max_inflight: int = 256
    """Requests one connection may have running before the server stops reading it."""
    max_connections: int = 10_000
    max_connections_per_ip: int = 512
    auth_failures_per_ip: int = 10
    auth_failure_window: float = 60.0
    shutdown_grace: float = 3.0
    close_linger: float = 2.0
    """After a fatal error: how long the half-closed connection's input is read and dropped
    so the error frame is not destroyed by a reset."""
    # UDP (section 1): replies per second and burst, per source address
    udp_replies_per_sec: float = 200.0
    udp_burst: int = 400
    # chat (section 6)
    chat_text_max: int = 16 * KiB
    chat_history_keep: int = 1000
    chat_history_max_join: int = 1000
    chat_history_max_messages: int = 1_000_000
    """Messages kept in all rooms together; the oldest go first."""
    chat_history_max_bytes: int = 256 * MiB
    """Bytes of history kept in all rooms together (text, sender, room, 32 a row)."""
    chat_room_idle: float = 7 * 24 * 3600.0
    """A room without members and without a message for this long is forgotten."""
    chat_rooms_per_connection: int = 64
    chat_seq_lookahead: int = 1024
    """Room sequence numbers reserved ahead on disk; after a crash numbering resumes above."""
    chat_anon_per_sec: float = 20.0
    """Messages (say, dm) an anonymous connection may send per second, on average..."""
    chat_anon_burst: int = 100
    """...and at once."""
    chat_anon_per_ip_per_sec: float = 100.0
    """The same for all anonymous connections from one address together."""
    chat_anon_per_ip_burst: int = 500
    # files (section 7)
    file_max_size: int = 16 * GiB
    file_quota: int = 64 * GiB
    file_quota_inodes: int = 1_000_000
    file_user_quota: int = 64 * GiB
    """What the files one user stored may take (default: the whole quota)."""
    file_user_quota_inodes: int = 1_000_000
    file_list_cache_names: int = 200_000
    file_list_cache_seconds: float = 60.0
    file_partial_max_age: float = 7 * 24 * 3600.0
    file_spool_high: int = 16 * MiB
    """Bytes of one upload waiting for the disk before the connection stops reading."""
    file_workers: int = 16
    """Threads writing and hashing uploads and hashing files for the files service."""
    # exec (section 8)
    exec_timeout_default: float = 60.0
    exec_timeout_max: float = 3600.0
    exec_kill_grace: float = 2.0
    exec_output_max: int = 64 * MiB
    exec_per_connection: int = 4
    exec_per_user: int = 8
    exec_total: int = 32
    exec_input_high: int = 1 * MiB
    """Bytes of stdin queued for one run before its connection stops reading."""

    # classic services (docs/classic.md): TCP connections in all and per source address,
    # and how long an echo connection may stay silent; UDP replies use udp_* above
    classic_connections: int = 256
    classic_connections_per_ip: int = 16
    classic_idle_timeout: float = 60.0

    def advertised(self) -> dict[str, Any]:
        """The limits a client needs to know, for ``hello``."""
        return {
            "max_header": self.max_header,
            "max_body": self.max_body,
            "idle_timeout": self.idle_timeout,
            "handshake_timeout": self.handshake_timeout,
            "send_timeout": self.send_timeout,
            "chat_text_max": self.chat_text_max,
            "chat_history_max_join": self.chat_history_max_join,
        }
