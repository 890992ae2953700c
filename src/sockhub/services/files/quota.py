"""The total quota: disk blocks and inodes of the files tree, idle partials and uploads.

Bytes are counted as the disk counts them, ``st_blocks * 512``, so 2,000 one-byte files
cost 2,000 blocks, not 2,000 bytes; every file and folder is one inode against
``file_quota_inodes``. An upload reserves its ``total`` rounded up to whole blocks and one
inode when it starts, so two uploads that each fit cannot together overshoot; once
published, what the disk really allocated replaces the estimate. The counts are kept as
the server changes the tree; a change made behind its back is seen by ``rescan``, which
runs at start and before an upload is refused (a file deleted by hand frees its room
without a restart).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass

from ...protocol.errors import FileQuota

__all__ = ["BLOCK", "Quota", "Usage", "allocated", "tree_usage"]

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


def tree_usage(root_fd: int) -> Usage:
    """Blocks and inodes of everything below a directory fd, symlinks not followed."""
    used = Usage()
    for _dir, subdirs, files, dir_fd in os.fwalk(".", dir_fd=root_fd):
        for name in (*subdirs, *files):
            try:
                st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            except FileNotFoundError:
                continue
            if stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode) or stat.S_ISLNK(st.st_mode):
                used += allocated(st)
    return used


class Quota:
    """Blocks and inodes counted against the limits; every method runs on the event loop."""

    def __init__(self, limit: int, inode_limit: int) -> None:
        self.limit = limit
        self.inode_limit = inode_limit
        self.files = Usage()
        self.partials: dict[str, Usage] = {}
        self.reserved: dict[str, Usage] = {}

    @property
    def used(self) -> Usage:
        total = self.files
        for u in (*self.partials.values(), *self.reserved.values()):
            total += u
        return total

    def fits(self, key: str, total: int, replaced: Usage) -> bool:
        """Whether an upload of ``total`` bytes (over a file that costs ``replaced``) fits."""
        after = self.used - self.partials.get(key, Usage()) - replaced + estimate(total)
        return after.bytes <= self.limit and after.inodes <= self.inode_limit

    def reserve(self, key: str, total: int, replaced: Usage) -> None:
        if not self.fits(key, total, replaced):
            used = self.used
            free = max(0, self.limit - used.bytes)
            inodes = max(0, self.inode_limit - used.inodes)
            raise FileQuota(
                f"{total} bytes do not fit the server's quota "
                f"({free} bytes in whole {BLOCK}-byte blocks and {inodes} files/folders free)"
            )
        self.partials.pop(key, None)
        self.reserved[key] = estimate(total)

    def release(self, key: str, held: int) -> None:
        """An upload ended without publishing; its partial keeps ``held`` bytes (0: gone)."""
        self.reserved.pop(key, None)
        if held:
            self.partials[key] = estimate(held)
        else:
            self.partials.pop(key, None)

    def published(self, key: str, added: Usage, replaced: Usage) -> None:
        """The upload's file (and folders made for it) now cost ``added``; ``replaced`` is freed."""
        self.reserved.pop(key, None)
        self.files = self.files + added - replaced

    def removed(self, freed: Usage) -> None:
        self.files = Usage(
            max(0, self.files.bytes - freed.bytes), max(0, self.files.inodes - freed.inodes)
        )

    def recount(self, files: Usage, partials: dict[str, int]) -> None:
        self.files = files
        self.partials = {k: estimate(v) for k, v in partials.items() if k not in self.reserved}
