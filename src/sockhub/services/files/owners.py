"""Who stored each file, for the per-user quota: one row per file (device, inode) -> user.

The files tree is shared by every user with the ``files`` grant; the row is written when
an upload is published and removed when the file is deleted or replaced through the
server. Files put there by hand (or by exec) have no row and count for nobody; rows of
files that vanished behind the server's back are pruned at each recount.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from pathlib import Path

from .hashes import wal_connection
from .quota import Usage

__all__ = ["Owners"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS owners (
    dev INTEGER NOT NULL,
    ino INTEGER NOT NULL,
    user TEXT NOT NULL,
    PRIMARY KEY (dev, ino)
) WITHOUT ROWID
"""

Key = tuple[int, int]


class Owners:
    """The owners table; every method is safe to call from worker threads."""

    def __init__(self, path: Path) -> None:
        self._db = wal_connection(path, _SCHEMA)
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def get(self, st: os.stat_result) -> str | None:
        with self._lock:
            row = self._db.execute(
                "SELECT user FROM owners WHERE dev = ? AND ino = ?", (st.st_dev, st.st_ino)
            ).fetchone()
        return None if row is None else str(row[0])

    def set(self, st: os.stat_result, user: str | None) -> None:
        """``user`` stored the file ``st`` describes (None: nobody, the row goes)."""
        with self._lock:
            if user is None:
                self._db.execute(
                    "DELETE FROM owners WHERE dev = ? AND ino = ?", (st.st_dev, st.st_ino)
                )
            else:
                self._db.execute(
                    "INSERT OR REPLACE INTO owners (dev, ino, user) VALUES (?, ?, ?)",
                    (st.st_dev, st.st_ino, user),
                )

    def tally(self, files: Mapping[Key, Usage]) -> dict[str, Usage]:
        """Each user's usage among ``files`` (what a recount found); rows of files that
        are gone are deleted."""
        with self._lock:
            rows = self._db.execute("SELECT dev, ino, user FROM owners").fetchall()
            gone = [(dev, ino) for dev, ino, _ in rows if (dev, ino) not in files]
            if gone:
                self._db.execute("BEGIN")
                self._db.executemany("DELETE FROM owners WHERE dev = ? AND ino = ?", gone)
                self._db.execute("COMMIT")
        by_user: dict[str, Usage] = {}
        for dev, ino, user in rows:
            found = files.get((dev, ino))
            if found is not None:
                by_user[user] = by_user.get(user, Usage()) + found
        return by_user
