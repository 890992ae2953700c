"""``file.list``, ``file.stat`` and ``file.delete`` (PROTOCOL.md section 7, other ops).

A listing is cut into pages that each fit a default-sized header (64 KiB), so any
client can read it: a page that is not the last says ``"more": true`` and the client
asks again with ``"after"`` set to the last name it got. Names that break the path
rules (control characters, not UTF-8) are left out: no request could name them.
"""

from __future__ import annotations

import bisect
import itertools
import os
import stat
from typing import Any

from ...protocol.errors import FileBadPath, FileNotFound
from ...protocol.fields import get_bool, get_str
from ...protocol.paths import MAX_SEGMENT_BYTES, check_name, check_path
from ...server.service import Request
from ..paging import PAGE_BYTES, take_page
from .quota import Usage, allocated
from .store import Store, fs_errors

__all__ = ["Browse"]


def _entry(name: str, st: os.stat_result) -> dict[str, Any]:
    if stat.S_ISDIR(st.st_mode):
        return {"name": name, "type": "dir", "mtime": st.st_mtime}
    return {"name": name, "type": "file", "size": st.st_size, "mtime": st.st_mtime}


def _usable(name: str) -> bool:
    try:
        check_name(name)
    except FileBadPath:
        return False
    return True


def _sorted_names(fd: int) -> list[str]:
    return sorted(name for name in os.listdir(fd) if _usable(name))


class Browse:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def listing(self, req: Request) -> None:
        segments = check_path(req.header.get("path", ""), root_ok=True)
        path = "/".join(segments)
        after = get_str(req.header, "after", "", max_len=MAX_SEGMENT_BYTES)
        entries, more = await self.store.run(self._page, segments, path, after)
        reply: dict[str, Any] = {"op": "file.list", "path": path, "entries": entries}
        if more:
            reply["more"] = True
        req.reply(reply)

    def _page(
        self, segments: tuple[str, ...], path: str, after: str
    ) -> tuple[list[dict[str, Any]], bool]:
        """One page from the folder's sorted names (listcache.py): a bisect, then one
        stat per entry on the page, never the whole folder again."""
        tree = self.store.tree
        with fs_errors(path), tree.folder(segments) as fd:
            names = self.store.listings.names(os.fstat(fd), lambda: _sorted_names(fd))
            found = (
                (name, tree.entry_stat(fd, segments, name))
                for name in itertools.islice(names, bisect.bisect_right(names, after), None)
            )
            return take_page((_entry(n, st) for n, st in found if st is not None), PAGE_BYTES)

    async def status(self, req: Request) -> None:
        segments = check_path(req.header.get("path", ""), root_ok=True)
        path = "/".join(segments)
        want_hash = get_bool(req.header, "hash", False)
        info = await self.store.run(self._stat, segments, path, want_hash)
        req.reply({"op": "file.stat", "path": path, **info})

    def _stat(self, segments: tuple[str, ...], path: str, want_hash: bool) -> dict[str, Any]:
        with fs_errors(path), self.store.tree.locate(segments) as spot:
            st = spot.lstat()
            if st is None:
                raise FileNotFound(f"{path}: no such file or directory")
            if stat.S_ISDIR(st.st_mode):
                return {"type": "dir", "mtime": st.st_mtime}
            if not stat.S_ISREG(st.st_mode):
                raise FileNotFound(f"{path} is not a regular file")
            fd, st = spot.open_regular()
        try:
            info: dict[str, Any] = {"type": "file", "total": st.st_size, "mtime": st.st_mtime}
            if want_hash:
                info["sha256"] = self.store.file_hash(fd, st)
            return info
        finally:
            os.close(fd)

    async def delete(self, req: Request) -> None:
        segments = check_path(req.header.get("path"))
        path = "/".join(segments)
        freed, owner = await self.store.run(self._delete, segments, path)
        self.store.quota.removed(freed, owner)
        req.reply({"op": "ok", "path": path})

    def _delete(self, segments: tuple[str, ...], path: str) -> tuple[Usage, str | None]:
        """Remove a file, a symlink (not its target) or an empty directory; what it freed,
        and whose it was."""
        with fs_errors(path), self.store.tree.locate(segments, follow_last=False) as spot:
            assert spot.name is not None  # the last segment is never followed, so never ""
            st = spot.lstat()
            if st is None:
                raise FileNotFound(f"{path}: no such file or directory")
            if stat.S_ISDIR(st.st_mode):
                os.rmdir(spot.name, dir_fd=spot.dir_fd)
                return allocated(st), None
            owner = self.store.owners.get(st)
            os.unlink(spot.name, dir_fd=spot.dir_fd)
        if stat.S_ISREG(st.st_mode):
            self.store.hashes.forget(st)
        if st.st_nlink > 1:
            return Usage(), None  # another name keeps the inode
        if owner is not None:
            self.store.owners.set(st, None)
        return allocated(st), owner
