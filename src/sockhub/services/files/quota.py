"""The total quota: bytes in the files tree, in idle partials, and promised to uploads.

An upload reserves its whole ``total`` when it starts, so two uploads that each fit
cannot together overshoot. The counts are kept as the server changes the tree; a
change made behind its back is seen by ``rescan``, which runs at start and before an
upload is refused (a file deleted by hand frees its room without a restart).
"""

from __future__ import annotations

import os
import stat

from ...protocol.errors import FileQuota

__all__ = ["Quota", "tree_bytes"]


def tree_bytes(root_fd: int) -> int:
    """Bytes of the regular files below a directory fd, symlinks not followed."""
    total = 0
    for _dir, _subdirs, files, dir_fd in os.fwalk(".", dir_fd=root_fd):
        for name in files:
            try:
                st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            except FileNotFoundError:
                continue
            if stat.S_ISREG(st.st_mode):
                total += st.st_size
    return total


class Quota:
    """Bytes counted against ``limit``; every method runs on the event loop."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.files = 0
        self.partials: dict[str, int] = {}
        self.reserved: dict[str, int] = {}

    @property
    def used(self) -> int:
        return self.files + sum(self.partials.values()) + sum(self.reserved.values())

    def fits(self, key: str, total: int, replaced: int) -> bool:
        """Whether an upload of ``total`` bytes (over a file of ``replaced``) fits."""
        return self.used - self.partials.get(key, 0) - replaced + total <= self.limit

    def reserve(self, key: str, total: int, replaced: int) -> None:
        if not self.fits(key, total, replaced):
            free = max(0, self.limit - self.used)
            raise FileQuota(f"{total} bytes do not fit the server's quota ({free} bytes free)")
        self.partials.pop(key, None)
        self.reserved[key] = total

    def release(self, key: str, held: int) -> None:
        """An upload ended without publishing; its partial keeps ``held`` bytes (0: gone)."""
        self.reserved.pop(key, None)
        if held:
            self.partials[key] = held
        else:
            self.partials.pop(key, None)

    def published(self, key: str, total: int, replaced: int) -> None:
        self.reserved.pop(key, None)
        self.files += total - replaced

    def removed(self, size: int) -> None:
        self.files = max(0, self.files - size)

    def recount(self, files: int, partials: dict[str, int]) -> None:
        self.files = files
        self.partials = {k: v for k, v in partials.items() if k not in self.reserved}
