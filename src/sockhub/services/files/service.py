"""The files service (PROTOCOL.md section 7): its op table, start, sweeps and stop."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from ...server.service import OpSpec, ServerContext, Service
from .browse import Browse
from .download import Downloads
from .store import Store
from .upload import Uploads

__all__ = ["FilesService"]

SWEEP_EVERY = 5.0
"""Seconds between checks for stalled uploads; old partials are swept far less often."""


class FilesService(Service):
    """Verified, resumable uploads and zero-copy downloads under ``DATA/files``."""

    name = "files"

    def __init__(self) -> None:
        self.store = Store()
        self.uploads = Uploads(self.store)
        self.downloads = Downloads(self.store)
        self.browse = Browse(self.store)
        self._last_partials = 0.0

    def ops(self) -> Iterable[OpSpec]:
        up, down, browse = self.uploads, self.downloads, self.browse
        return (
            OpSpec("file.put", up.put, "files", grant="files"),
            OpSpec("file.data", up.data, "files", grant="files", body=up.data_body),  # type: ignore[arg-type]
            OpSpec("file.end", up.end, "files", grant="files"),
            OpSpec("file.get", down.get, "files", grant="files"),
            OpSpec("file.list", browse.listing, "files", grant="files"),
            OpSpec("file.stat", browse.status, "files", grant="files"),
            OpSpec("file.delete", browse.delete, "files", grant="files"),
        )

    async def start(self, ctx: ServerContext) -> None:
        await self.store.open(ctx.data, ctx.limits)
        self.store.spools = ctx.spools
        self._last_partials = self.store.loop.time()
        every = min(SWEEP_EVERY, ctx.limits.idle_timeout / 4)
        ctx.background.every(every, self._sweep, "files sweeper")

    async def _sweep(self) -> None:
        """Fail uploads gone quiet; now and then remove partials past their age."""
        store = self.store
        limits = store.limits
        now = store.loop.time()
        self.uploads.expire(now, limits.idle_timeout)
        await store.run(store.hashes.flush)
        if now - self._last_partials >= min(3600.0, limits.file_partial_max_age / 4):
            self._last_partials = now
            busy = [u.key for u in self.uploads.busy.values() if u.key]
            for key in await store.run(store.partials.sweep, limits.file_partial_max_age, busy):
                store.quota.release(key, 0)

    async def stop(self) -> None:
        if self.uploads.cleanups:
            await asyncio.wait(set(self.uploads.cleanups), timeout=10)
        await self.store.close()
