"""Chat history in SQLite: WAL mode, bounded per room and in all, every batch one transaction.

All database work runs on one worker thread, in submission order, so a read queued
after a write sees it, and the event loop never waits on the disk. Besides the
messages, ``rooms`` keeps each room's last stored ``seq``, the time of its last message
and a ``reserved`` mark at or above every ``seq`` ever handed out, so numbering never
goes back after a restart, not even after a crash (see ``memory.MemoryBroker``).

What anonymous clients can make the disk hold is bounded three ways: ``keep`` messages
per room; ``max_messages`` and ``max_bytes`` in all rooms together, the oldest messages
(in the order they were stored) evicted first whatever their room; and rooms idle for
``room_idle`` seconds with nobody in them are forgotten, messages and numbering both
(a forgotten room starts again at ``seq`` 1). Forgetting also runs at start, before the
rooms' marks are loaded, so a restart loads only the rooms still in use.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from ...server.limits import Limits
from .broker import Message

__all__ = ["HistoryStore", "cost"]

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS rooms (
    room TEXT PRIMARY KEY,
    last_seq INTEGER NOT NULL,
    reserved INTEGER NOT NULL,
    last_ts REAL NOT NULL DEFAULT 0
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
ROW_BYTES = 32
"""What a stored message costs beyond its text, sender and room (seq, ts, index entry)."""
_COST = f"length(text) + length(CAST(sender AS BLOB)) + length(CAST(room AS BLOB)) + {ROW_BYTES}"
EVICT_CHUNK = 256
"""Oldest messages deleted per statement while the history is over its budget."""
_DEFAULT = Limits()
NO_BOUND = (1 << 63) - 1
"""Above every ``seq`` (SQLite's largest integer): a read of the latest messages."""
ROWS_PER_INSERT = 256
"""Rows per INSERT statement: one SQLite step, so one release of the GIL, per statement
(``executemany`` steps, and gives the GIL up and takes it back, once per row)."""


def cost(msg: Message) -> int:
    """What ``msg`` counts against ``max_bytes`` (the same sum as ``_COST`` in SQL)."""
    return len(msg.text) + len(msg.sender.encode()) + len(msg.room.encode()) + ROW_BYTES


class HistoryStore:
    """The kept messages of every room; at most ``keep`` per room survive a batch."""

    def __init__(
        self,
        path: Path,
        keep: int,
        *,
        max_messages: int = _DEFAULT.chat_history_max_messages,
        max_bytes: int = _DEFAULT.chat_history_max_bytes,
        room_idle: float = _DEFAULT.chat_room_idle,
    ) -> None:
        self.path = path
        self.keep = keep
        self.max_messages = max_messages
        self.max_bytes = max_bytes
        self.room_idle = room_idle
        self.messages = 0
        self.bytes = 0
        """What the history holds now (kept by every write, counted once at open)."""
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
        columns = {row[1] for row in db.execute("PRAGMA table_info(rooms)")}
        if "last_ts" not in columns:  # a history from before rooms were forgotten: idle
            db.execute("ALTER TABLE rooms ADD COLUMN last_ts REAL NOT NULL DEFAULT 0")
            db.execute(  # counts from its last message, or from now
                "UPDATE rooms SET last_ts = coalesce((SELECT max(ts) FROM messages "
                "WHERE messages.room = rooms.room), ?)",
                (time.time(),),
            )
        self._db = db
        self._forget(time.time() - self.room_idle, frozenset())
        self._count()
        db.execute("BEGIN")
        self._evict()
        db.execute("COMMIT")
        return dict(db.execute("SELECT room, reserved FROM rooms").fetchall())

    def _count(self) -> None:
        self.messages, self.bytes = (
            self._conn()
            .execute(f"SELECT count(*), coalesce(sum({_COST}), 0) FROM messages")
            .fetchone()
        )

    def _deleted(self, costs: sqlite3.Cursor) -> int:
        """Take deleted rows (their ``RETURNING`` costs) off the counts; how many."""
        rows = costs.fetchall()
        self.messages -= len(rows)
        self.bytes -= sum(row[0] for row in rows)
        return len(rows)

    def _evict(self) -> None:
        """While over ``max_messages`` or ``max_bytes``, delete the oldest stored messages,
        whatever their room (rowid order is the order they were stored)."""
        db = self._conn()
        while self.messages > self.max_messages or self.bytes > self.max_bytes:
            over = self.messages - self.max_messages
            if self.bytes > self.max_bytes and self.messages:  # as many as the average row
                over = max(over, -(-(self.bytes - self.max_bytes) * self.messages // self.bytes))
            over = max(1, min(EVICT_CHUNK, over))
            gone = self._deleted(
                db.execute(
                    f"DELETE FROM messages WHERE rowid IN (SELECT rowid FROM messages "
                    f"ORDER BY rowid LIMIT ?) RETURNING {_COST}",
                    (over,),
                )
            )
            if not gone:
                return

    def forget(self, busy: frozenset[str]) -> asyncio.Future[list[str]]:
        """Forget rooms idle past ``room_idle`` that are not in ``busy`` (rooms with
        members); the names forgotten."""
        return self._run(lambda: self._forget(time.time() - self.room_idle, busy))

    def _forget(self, before: float, busy: frozenset[str]) -> list[str]:
        db = self._conn()
        idle = [
            room
            for (room,) in db.execute("SELECT room FROM rooms WHERE last_ts < ?", (before,))
            if room not in busy
        ]
        if not idle:
            return []
        db.execute("BEGIN")
        try:
            for start in range(0, len(idle), EVICT_CHUNK):
                chunk = idle[start : start + EVICT_CHUNK]
                marks = ", ".join("?" * len(chunk))
                self._deleted(
                    db.execute(
                        f"DELETE FROM messages WHERE room IN ({marks}) RETURNING {_COST}", chunk
                    )
                )
                db.execute(f"DELETE FROM rooms WHERE room IN ({marks})", chunk)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            self._count()
            raise
        return idle

    def write(self, batch: Sequence[Message], reserved: Mapping[str, int]) -> asyncio.Future[None]:
        """Store a batch and the rooms' new ``reserved`` marks in one transaction, then trim
        each room it touched to ``keep`` messages."""
        return self._run(lambda: self._write(batch, reserved))

    def _write(self, batch: Sequence[Message], reserved: Mapping[str, int]) -> None:
        db = self._conn()
        last: dict[str, Message] = {}
        for msg in batch:
            last[msg.room] = msg
        db.execute("BEGIN")
        try:
            for start in range(0, len(batch), ROWS_PER_INSERT):
                rows = batch[start : start + ROWS_PER_INSERT]
                db.execute(
                    _INSERT + ", ".join(["(?, ?, ?, ?, ?)"] * len(rows)),
                    [v for m in rows for v in (m.room, m.seq, m.sender, m.ts, m.text)],
                )
            db.executemany(
                "INSERT INTO rooms (room, last_seq, reserved, last_ts) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (room) DO UPDATE SET last_seq = excluded.last_seq, "
                "reserved = max(reserved, excluded.reserved), last_ts = excluded.last_ts",
                [(room, m.seq, reserved[room], m.ts) for room, m in last.items()],
            )
            self.messages += len(batch)
            self.bytes += sum(cost(m) for m in batch)
            for room in last:
                self._deleted(
                    db.execute(
                        f"DELETE FROM messages WHERE room = ? AND seq <= (SELECT seq FROM "
                        f"messages WHERE room = ? ORDER BY seq DESC LIMIT 1 OFFSET ?) "
                        f"RETURNING {_COST}",
                        (room, room, self.keep),
                    )
                )
            self._evict()
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            self._count()
            raise

    def read(self, room: str, *, since: int | None, count: int) -> asyncio.Future[list[Message]]:
        """Kept messages after ``since`` (else the ``count`` latest), oldest first."""
        return self._run(lambda: self._read(room, since, count))

    def read_before(
        self, room: str, before: int | None, count: int
    ) -> asyncio.Future[list[Message]]:
        """The ``count`` latest kept messages below ``before`` (scroll-back), oldest first."""
        return self._run(lambda: self._latest(room, NO_BOUND if before is None else before, count))

    def _read(self, room: str, since: int | None, count: int) -> list[Message]:
        if since is None:
            return self._latest(room, NO_BOUND, count)
        rows = (
            self._conn()
            .execute(
                "SELECT seq, sender, ts, text FROM messages WHERE room = ? AND seq > ? "
                "ORDER BY seq",
                (room, since),
            )
            .fetchall()
        )
        return _messages(room, rows)

    def _latest(self, room: str, before: int, count: int) -> list[Message]:
        rows = (
            self._conn()
            .execute(
                "SELECT seq, sender, ts, text FROM messages WHERE room = ? AND seq < ? "
                "ORDER BY seq DESC LIMIT ?",
                (room, before, count),
            )
            .fetchall()
        )
        rows.reverse()
        return _messages(room, rows)

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


def _messages(room: str, rows: list[tuple[int, str, float, bytes]]) -> list[Message]:
    return [Message(room, seq, sender, ts, bytes(text)) for seq, sender, ts, text in rows]
