"""The sha256 of files the server knows, so a download need not read a file twice.

A row is keyed by the file's identity (device, inode) and is valid only while size,
mtime and ctime are what they were when it was hashed: any write behind the server's
back changes at least the ctime, so the file is hashed again, never served stale.

Timestamps come from a coarse clock (a few ms), so a change in the same tick as the
hashing could keep them all. Two rules close that window: a file the server stores
gets a fine-grained mtime of its own choosing (no outside write lands on exactly that
nanosecond), and a hash computed of an outside file is kept only when the file had
been still for ``SETTLED_NS`` before it was read (git's "racily clean" rule).
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any

__all__ = ["SETTLED_NS", "HashStore", "feed", "hash_fd", "wal_connection"]

SETTLED_NS = 2_000_000_000
"""How long a file must have been unchanged for a hash read from it to be kept (2 s
covers filesystems that store whole seconds)."""
_READ = 1 << 20

_SCHEMA = """
CREATE TABLE IF NOT EXISTS hashes (
    dev INTEGER NOT NULL,
    ino INTEGER NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    ctime_ns INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    PRIMARY KEY (dev, ino)
) WITHOUT ROWID
"""


def wal_connection(path: Path, schema: str) -> sqlite3.Connection:
    """A connection for worker threads (callers hold a lock), in WAL mode, ``schema`` made."""
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute(schema)
    return db


def _stamp(st: os.stat_result) -> tuple[int, int, int]:
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns)


_Key = tuple[int, int]
_Row = tuple[int, int, int, str]


class HashStore:
    """SQLite table of known hashes; every method is safe to call from worker threads.

    Writes wait in memory and reach the table in batches (``FLUSH_AT`` of them, or at
    ``flush``): one transaction per batch instead of one per stored file. A crash loses
    only unflushed rows, and a lost row only means a file is hashed again.
    """

    FLUSH_AT = 256

    def __init__(self, path: Path) -> None:
        self._db = wal_connection(path, _SCHEMA)
        self._lock = threading.Lock()
        self._pending: dict[_Key, _Row | None] = {}  # None: delete the row

    def close(self) -> None:
        with self._lock:
            self._flush()
            self._db.close()

    def get(self, st: os.stat_result) -> str | None:
        """The hash of the file ``st`` describes, if it has not changed since it was hashed."""
        key = (st.st_dev, st.st_ino)
        with self._lock:
            if key in self._pending:
                row = self._pending[key]
            else:
                row = self._db.execute(
                    "SELECT size, mtime_ns, ctime_ns, sha256 FROM hashes WHERE dev=? AND ino=?",
                    key,
                ).fetchone()
        if row is None or tuple(row[:3]) != _stamp(st):
            return None
        return str(row[3])

    def put(self, st: os.stat_result, sha256: str) -> None:
        """Remember the hash of a file the server itself just wrote (``st`` after the rename)."""
        self._change((st.st_dev, st.st_ino), (*_stamp(st), sha256))

    def forget(self, st: os.stat_result) -> None:
        self._change((st.st_dev, st.st_ino), None)

    def flush(self) -> None:
        with self._lock:
            self._flush()

    def _change(self, key: _Key, row: _Row | None) -> None:
        with self._lock:
            self._pending[key] = row
            if len(self._pending) >= self.FLUSH_AT:
                self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        rows, self._pending = self._pending, {}
        with self._db:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT OR REPLACE INTO hashes VALUES (?, ?, ?, ?, ?, ?)",
                [(*key, *row) for key, row in rows.items() if row is not None],
            )
            self._db.executemany(
                "DELETE FROM hashes WHERE dev=? AND ino=?",
                [key for key, row in rows.items() if row is None],
            )

    def learn(
        self, before: os.stat_result, after: os.stat_result, sha256: str, started_ns: int
    ) -> bool:
        """Keep a hash read from an outside file if it held still before and while it was read.

        ``started_ns`` is ``time.time_ns()`` taken before ``before`` was.
        """
        same = (before.st_dev, before.st_ino, *_stamp(before)) == (
            after.st_dev,
            after.st_ino,
            *_stamp(after),
        )
        if not same or started_ns - max(before.st_mtime_ns, before.st_ctime_ns) < SETTLED_NS:
            return False
        self.put(after, sha256)
        return True


def feed(digest: Any, fd: int, size: int, stop: threading.Event | None = None) -> None:
    """Update ``digest`` with the first ``size`` bytes of an open file, read with ``pread``.

    ``pread`` leaves the fd's offset alone, so a ``sendfile`` of the same fd can run at
    the same time; ``stop`` ends the read early (the download was cancelled).
    """
    buf = bytearray(_READ)
    view = memoryview(buf)
    done = 0
    while done < size:
        if stop is not None and stop.is_set():
            raise OSError("hashing stopped")
        n = os.preadv(fd, [view[: min(_READ, size - done)]], done)
        if n == 0:
            raise OSError(f"the file ended {size - done} bytes early")
        digest.update(view[:n])
        done += n


def hash_fd(fd: int, size: int, stop: threading.Event | None = None) -> str:
    """sha256 (hex) of the first ``size`` bytes of an open file."""
    digest = hashlib.sha256()
    feed(digest, fd, size, stop)
    return digest.hexdigest()
