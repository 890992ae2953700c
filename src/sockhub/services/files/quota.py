"""The total quota: disk blocks and inodes of the files tree, idle partials and uploads.

Bytes are counted as the disk counts them, ``st_blocks * 512``, so 2,000 one-byte files
cost 2,000 blocks, not 2,000 bytes; every file and folder is one inode against
``file_quota_inodes``. An upload reserves its ``total`` rounded up to whole blocks and one
inode when it starts, so two uploads that each fit cannot together overshoot; once
published, what the disk really allocated replaces the estimate. The counts are kept as
the server changes the tree; a change made behind its back is seen by ``rescan``, which
runs at start and before an upload is refused (a file deleted by hand frees its room
without a restart).

Each user is held to ``file_user_quota`` and ``file_user_quota_inodes`` as well: what the
files it stored (owners.py) cost, plus its running uploads' reservations. Folders, idle
partials and files without an owner count against the total only.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass

from ...protocol.errors import FileQuota

__all__ = ["BLOCK", "Owned", "Quota", "Usage", "allocated", "tree_usage"]

Key = tuple[int, int]

BLOCK = 4096
"""What a reservation rounds up to: the block size of every common Linux filesystem."""


@dataclass(frozen=True, slots=True)
class Usage:
    """Disk bytes (whole blocks) and inodes."""

    bytes: int = 0
    inodes: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.bytes + other.bytes, self.inodes + other.inodes)

    def __sub__(self, other: Usage) -> Usage:
        return Usage(self.bytes - other.bytes, self.inodes - other.inodes)


def allocated(st: os.stat_result) -> Usage:
    """What one file or folder costs: its blocks on disk and its inode."""
    return Usage(st.st_blocks * 512, 1)


def estimate(total: int) -> Usage:
    """What a file of ``total`` bytes will cost before the disk has said."""
    return Usage(-(-total // BLOCK) * BLOCK, 1)


def tree_usage(root_fd: int) -> tuple[Usage, dict[Key, Usage]]:
    """Blocks and inodes of everything below a directory fd, symlinks not followed; and
    what each regular file costs, by (device, inode)."""
    used = Usage()
    files: dict[Key, Usage] = {}
    for _dir, subdirs, names, dir_fd in os.fwalk(".", dir_fd=root_fd):
        for name in (*subdirs, *names):
            try:
                st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            except FileNotFoundError:
                continue
            if stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode) or stat.S_ISLNK(st.st_mode):
                used += allocated(st)
            if stat.S_ISREG(st.st_mode):
                files[(st.st_dev, st.st_ino)] = allocated(st)
    return used, files


@dataclass(frozen=True, slots=True)
class Owned:
    """Who a change is for: the user uploading, and the owner of what it replaces."""

    user: str | None = None
    replaced_owner: str | None = None


class Quota:
    """Blocks and inodes counted against the limits; every method runs on the event loop."""

    def __init__(self, limit: int, inode_limit: int, user_limit: int, user_inode_limit: int):
        self.limit = limit
        self.inode_limit = inode_limit
        self.user_limit = user_limit
        self.user_inode_limit = user_inode_limit
        self.files = Usage()
        self.partials: dict[str, Usage] = {}
        self.reserved: dict[str, Usage] = {}
        self.by_user: dict[str, Usage] = {}
        self.reserved_by: dict[str, str] = {}
        """The user of each reservation (uploads by users only)."""

    @property
    def used(self) -> Usage:
        total = self.files
        for u in (*self.partials.values(), *self.reserved.values()):
            total += u
        return total

    def user_used(self, user: str, but: str = "") -> Usage:
        """What ``user``'s files and running uploads (but reservation ``but``) cost."""
        total = self.by_user.get(user, Usage())
        for key, owner in self.reserved_by.items():
            if owner == user and key != but:
                total += self.reserved[key]
        return total

    def fits(self, key: str, total: int, replaced: Usage, who: Owned = Owned()) -> bool:
        """Whether an upload of ``total`` bytes (over a file that costs ``replaced``) fits."""
        return self._refusal(key, total, replaced, who) is None

    def _refusal(self, key: str, total: int, replaced: Usage, who: Owned) -> str | None:
        after = self.used - self.partials.get(key, Usage()) - replaced + estimate(total)
        if after.bytes > self.limit or after.inodes > self.inode_limit:
            used = self.used
            return (
                f"{total} bytes do not fit the server's quota "
                f"({max(0, self.limit - used.bytes)} bytes in whole {BLOCK}-byte blocks and "
                f"{max(0, self.inode_limit - used.inodes)} files/folders free)"
            )
        if who.user is None:
            return None
        mine = self.user_used(who.user, key) + estimate(total)
        if who.replaced_owner == who.user:
            mine -= replaced
        if mine.bytes > self.user_limit or mine.inodes > self.user_inode_limit:
            return (
                f"{total} bytes do not fit {who.user}'s quota of {self.user_limit} bytes "
                f"and {self.user_inode_limit} files/folders"
            )
        return None

    def reserve(self, key: str, total: int, replaced: Usage, who: Owned = Owned()) -> None:
        refusal = self._refusal(key, total, replaced, who)
        if refusal is not None:
            raise FileQuota(refusal)
        self.partials.pop(key, None)
        self.reserved[key] = estimate(total)
        if who.user is not None:
            self.reserved_by[key] = who.user

    def release(self, key: str, held: int) -> None:
        """An upload ended without publishing; its partial keeps ``held`` bytes (0: gone)."""
        self.reserved.pop(key, None)
        self.reserved_by.pop(key, None)
        if held:
            self.partials[key] = estimate(held)
        else:
            self.partials.pop(key, None)

    def published(self, key: str, added: Usage, replaced: Usage, who: Owned = Owned()) -> None:
        """The upload's file (and folders made for it) now cost ``added``; ``replaced`` is
        freed (also for its owner); the file is ``who.user``'s."""
        self.reserved.pop(key, None)
        self.reserved_by.pop(key, None)
        self.files = self.files + added - replaced
        self._charge(who.replaced_owner, Usage() - replaced)
        self._charge(who.user, added)

    def removed(self, freed: Usage, owner: str | None = None) -> None:
        self.files = _floor(self.files - freed)
        self._charge(owner, Usage() - freed)

    def _charge(self, user: str | None, change: Usage) -> None:
        if user is not None:
            self.by_user[user] = _floor(self.by_user.get(user, Usage()) + change)

    def recount(
        self, files: Usage, partials: dict[str, int], by_user: dict[str, Usage] | None = None
    ) -> None:
        self.files = files
        self.partials = {k: estimate(v) for k, v in partials.items() if k not in self.reserved}
        if by_user is not None:
            self.by_user = by_user


def _floor(u: Usage) -> Usage:
    return Usage(max(0, u.bytes), max(0, u.inodes))
