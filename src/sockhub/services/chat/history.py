"""Chat history in SQLite: WAL mode, bounded per room, every batch one transaction.

All database work runs on one worker thread, in submission order, so a read queued
after a write sees it, and the event loop never waits on the disk. Besides the
messages, ``rooms`` keeps each room's last stored ``seq`` and a ``reserved`` mark at
or above every ``seq`` ever handed out, so numbering never goes back after a restart,
not even after a crash (see ``memory.MemoryBroker``).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from .broker import Message

__all__ = ["HistoryStore"]

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS rooms (
    room TEXT PRIMARY KEY,
    last_seq INTEGER NOT NULL,
    reserved INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (
    room TEXT NOT NULL,
    seq INTEGER NOT NULL,
    sender TEXT NOT NULL,
    ts REAL NOT NULL,
    text BLOB NOT NULL,
    PRIMARY KEY (room, seq)
);
"""


_INSERT = "INSERT INTO messages (room, seq, sender, ts, text) VALUES "
ROWS_PER_INSERT = 256
"""Rows per INSERT statement: one SQLite step, so one release of the GIL, per statement
(``executemany`` steps, and gives the GIL up and takes it back, once per row)."""


class HistoryStore:
    """The kept messages of every room; at most ``keep`` per room survive a batch."""

    def __init__(self, path: Path, keep: int) -> None:
        self.path = path
        self.keep = keep
        self._db: sqlite3.Connection | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sockhub-chat-db")

    def _run(self, fn: Callable[[], T]) -> asyncio.Future[T]:
        """Queue ``fn`` on the worker thread now (the order of calls is the order of work)."""
        return asyncio.get_running_loop().run_in_executor(self._pool, fn)

    def open(self) -> asyncio.Future[dict[str, int]]:
        """Open (creating) the database; every room's ``reserved`` mark."""
        return self._run(self._open)

    def _open(self) -> dict[str, int]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(_SCHEMA)
        self._db = db
        return dict(db.execute("SELECT room, reserved FROM rooms").fetchall())

    def write(self, batch: Sequence[Message], reserved: Mapping[str, int]) -> asyncio.Future[None]:
        """Store a batch and the rooms' new ``reserved`` marks in one transaction, then trim
        each room it touched to ``keep`` messages."""
        return self._run(lambda: self._write(batch, reserved))

    def _write(self, batch: Sequence[Message], reserved: Mapping[str, int]) -> None:
        db = self._conn()
        last: dict[str, int] = {}
        for msg in batch:
            last[msg.room] = msg.seq
        db.execute("BEGIN")
        try:
            for start in range(0, len(batch), ROWS_PER_INSERT):
                rows = batch[start : start + ROWS_PER_INSERT]
                db.execute(
                    _INSERT + ", ".join(["(?, ?, ?, ?, ?)"] * len(rows)),
                    [v for m in rows for v in (m.room, m.seq, m.sender, m.ts, m.text)],
                )
            db.executemany(
                "INSERT INTO rooms (room, last_seq, reserved) VALUES (?, ?, ?) "
                "ON CONFLICT (room) DO UPDATE SET last_seq = excluded.last_seq, "
                "reserved = max(reserved, excluded.reserved)",
                [(room, seq, reserved[room]) for room, seq in last.items()],
            )
            db.executemany(
                "DELETE FROM messages WHERE room = ? AND seq <= (SELECT seq FROM messages "
                "WHERE room = ? ORDER BY seq DESC LIMIT 1 OFFSET ?)",
                [(room, room, self.keep) for room in last],
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def read(self, room: str, *, since: int | None, count: int) -> asyncio.Future[list[Message]]:
        """Kept messages after ``since`` (else the ``count`` latest), oldest first."""
        return self._run(lambda: self._read(room, since, count))

    def _read(self, room: str, since: int | None, count: int) -> list[Message]:
        db = self._conn()
        if since is not None:
            rows = db.execute(
                "SELECT seq, sender, ts, text FROM messages WHERE room = ? AND seq > ? "
                "ORDER BY seq",
                (room, since),
            ).fetchall()
        else:
            rows = db.execute(
                "SELECT seq, sender, ts, text FROM messages WHERE room = ? "
                "ORDER BY seq DESC LIMIT ?",
                (room, count),
            ).fetchall()
            rows.reverse()
        return [Message(room, seq, sender, ts, bytes(text)) for seq, sender, ts, text in rows]

    def settle(self, used: Mapping[str, int]) -> asyncio.Future[None]:
        """At a clean stop: lower each room's ``reserved`` mark to the last ``seq`` used,
        so numbering goes on without a gap."""
        return self._run(lambda: self._settle(used))

    def _settle(self, used: Mapping[str, int]) -> None:
        self._conn().executemany(
            "UPDATE rooms SET reserved = ? WHERE room = ?",
            [(seq, room) for room, seq in used.items()],
        )

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("the chat history is not open")
        return self._db

    async def close(self) -> None:
        """Close after every job already submitted has run."""
        if self._db is not None:
            await self._run(self._close)
        self._pool.shutdown(wait=True)

    def _close(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            db.close()
