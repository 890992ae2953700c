"""What every files op shares: the root, the partial area, known hashes, quota, threads.

Layout under the data folder (DESIGN.md): ``files/`` is the tree clients see,
``files-partial/`` holds partial uploads (outside the tree, same filesystem, so the
last step of an upload is one atomic rename), ``files-hashes.sqlite`` the known hashes.
Anything that may block on the disk runs on this service's own worker threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from ...server.budget import Budget
from ...server.limits import Limits
from .hashes import HashStore, hash_fd
from .listcache import ListCache
from .owners import Owners
from .partials import Partials
from .quota import Owned, Quota, Usage, tree_usage
from .tree import Tree, os_error

__all__ = ["Store", "fs_errors"]

T = TypeVar("T")

RESCAN_EVERY = 10.0
"""Seconds between two recounts of the disk that a refused upload may trigger."""


@contextlib.contextmanager
def fs_errors(path: str) -> Iterator[None]:
    """Turn an ``OSError`` about ``path`` into its protocol error (unknown ones stay)."""
    try:
        yield
    except OSError as exc:
        err = os_error(exc, path)
        if err is exc:
            raise
        raise err from exc


class Store:
    """The files service's state; ``open`` at service start, ``close`` at stop."""

    def __init__(self) -> None:
        self.tree: Tree
        self.partials: Partials
        self.hashes: HashStore
        self.owners: Owners
        self.quota: Quota
        self.listings: ListCache
        self.limits: Limits
        self.spools: Budget
        """The server-wide budget every upload's spool reserves its memory from."""
        self.loop: asyncio.AbstractEventLoop
        self.executor: ThreadPoolExecutor
        self._rescanned = -RESCAN_EVERY

    async def open(self, data: Path, limits: Limits) -> None:
        self.loop = asyncio.get_running_loop()
        self.limits = limits
        self.executor = ThreadPoolExecutor(limits.file_workers, thread_name_prefix="sockhub-files")
        self.tree = Tree(data / "files")
        self.partials = Partials(data / "files-partial")
        self.hashes = HashStore(data / "files-hashes.sqlite")
        self.owners = Owners(data / "files-hashes.sqlite")
        self.quota = Quota(
            limits.file_quota,
            limits.file_quota_inodes,
            limits.file_user_quota,
            limits.file_user_quota_inodes,
        )
        self.listings = ListCache(limits.file_list_cache_names, limits.file_list_cache_seconds)
        await self.run(self.partials.sweep, limits.file_partial_max_age, ())
        await self.rescan()

    async def close(self) -> None:
        await asyncio.to_thread(self.executor.shutdown)
        self.hashes.close()
        self.owners.close()
        self.partials.close()
        self.tree.close()

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        """``fn(*args)`` on a worker thread."""
        return await self.loop.run_in_executor(self.executor, fn, *args)

    async def rescan(self) -> None:
        used, files = await self.run(tree_usage, self.tree.fd)
        by_user = await self.run(self.owners.tally, files)
        partials = await self.run(self.partials.sizes)
        self.quota.recount(used, partials, by_user)
        self._rescanned = self.loop.time()

    async def reserve(self, key: str, total: int, replaced: Usage, who: Owned) -> None:
        """Count an upload against the quota, recounting the disk once before refusing."""
        if not self.quota.fits(key, total, replaced, who) and (
            self.loop.time() - self._rescanned >= RESCAN_EVERY
        ):
            await self.rescan()
        self.quota.reserve(key, total, replaced, who)

    def file_hash(self, fd: int, st: os.stat_result, stop: threading.Event | None = None) -> str:
        """The sha256 of an open regular file: known, or read now (and kept if it held still)."""
        known = self.hashes.get(st)
        if known is not None:
            return known
        started = time.time_ns()
        sha = hash_fd(fd, st.st_size, stop)
        self.hashes.learn(st, os.fstat(fd), sha, started)
        return sha
