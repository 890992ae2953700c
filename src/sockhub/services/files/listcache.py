"""Sorted folder listings kept between the pages of ``file.list``.

Without it every page re-read, re-stat'ed and re-sorted the whole folder (a 50,000-file
folder cost 22 s of server CPU to page through). Here a folder's usable names are read
and sorted once and kept, keyed by the folder's (device, inode) and valid while its
mtime and ctime are unchanged: adding, removing or renaming an entry changes both, so a
changed folder is read again. Each page then costs a bisect and one stat per entry on it.

Directory timestamps come from a coarse clock, so a change in the same tick as the read
could leave them equal: a listing read less than ``SETTLE`` seconds after the folder's
last change (its mtime) is used for that one page only. The cache is bounded by the total number of
names it holds and by age (limits ``file_list_cache_names``, ``file_list_cache_seconds``);
the least recently used folders go first, and a folder bigger than the whole budget is
read for each page, as before.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["SETTLE", "ListCache"]

SETTLE = 2.0


@dataclass(frozen=True, slots=True)
class _Folder:
    stamp: tuple[int, int]
    names: list[str]
    kept: float


class ListCache:
    """Shared by the files worker threads, hence the lock."""

    def __init__(self, max_names: int, max_age: float) -> None:
        self.max_names = max_names
        self.max_age = max_age
        self._folders: OrderedDict[tuple[int, int], _Folder] = OrderedDict()
        self._held = 0
        self._lock = threading.Lock()

    def names(self, st: os.stat_result, read: Callable[[], list[str]]) -> list[str]:
        """The sorted names of the folder ``st`` describes: kept, or ``read()`` now."""
        key = (st.st_dev, st.st_ino)
        stamp = (st.st_mtime_ns, st.st_ctime_ns)
        now = time.monotonic()
        with self._lock:
            kept = self._folders.get(key)
            if kept is not None and kept.stamp == stamp and now - kept.kept <= self.max_age:
                self._folders.move_to_end(key)
                return kept.names
        names = read()
        settled = time.time_ns() - st.st_mtime_ns > SETTLE * 1e9
        with self._lock:
            self._drop(key)
            if settled and len(names) <= self.max_names:
                self._folders[key] = _Folder(stamp, names, now)
                self._held += len(names)
                self._trim(now)
        return names

    def _drop(self, key: tuple[int, int]) -> None:
        old = self._folders.pop(key, None)
        if old is not None:
            self._held -= len(old.names)

    def _trim(self, now: float) -> None:
        for key, folder in list(self._folders.items()):
            if self._held <= self.max_names and now - folder.kept <= self.max_age:
                continue
            self._drop(key)
