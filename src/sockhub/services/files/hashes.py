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

__all__ = ["SETTLED_NS", "HashStore", "feed", "hash_fd"]

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


def _stamp(st: os.stat_result) -> tuple[int, int, int]:
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class HashStore:
    """SQLite table of known hashes; every method is safe to call from worker threads."""

    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def get(self, st: os.stat_result) -> str | None:
        """The hash of the file ``st`` describes, if it has not changed since it was hashed."""
        with self._lock:
            row = self._db.execute(
                "SELECT size, mtime_ns, ctime_ns, sha256 FROM hashes WHERE dev=? AND ino=?",
                (st.st_dev, st.st_ino),
            ).fetchone()
        if row is None or tuple(row[:3]) != _stamp(st):
            return None
        return str(row[3])

    def put(self, st: os.stat_result, sha256: str) -> None:
        """Remember the hash of a file the server itself just wrote (``st`` after the rename)."""
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO hashes VALUES (?, ?, ?, ?, ?, ?)",
                (st.st_dev, st.st_ino, *_stamp(st), sha256),
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

    def forget(self, st: os.stat_result) -> None:
        with self._lock:
            self._db.execute("DELETE FROM hashes WHERE dev=? AND ino=?", (st.st_dev, st.st_ino))


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
