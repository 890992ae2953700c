"""Bookkeeping writes gathered into one call: whatever changed during a loop turn, and
while the previous call was in flight, goes out together.

The Redis broker records which rooms the node has members in, which names its
connections hold, and what each room's history keeps (``redis_totals``). Written one change at a time, a thousand members leaving at once
would be a thousand calls at once, more than a connection pool holds; gathered, they
are one pipelined call. The writer is handed the *keys* that changed, not values: it
reads the current state when it writes, so the last write always carries the latest
state, and one call is in flight at a time, so an older one never lands after it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import Generic, TypeVar

__all__ = ["Coalesced"]

K = TypeVar("K")


class Coalesced(Generic[K]):
    """Calls ``write`` with every key changed since its last call, one call at a time."""

    def __init__(self, write: Callable[[set[K]], Awaitable[None]]) -> None:
        self._write = write
        self._dirty: set[K] = set()
        self._next: asyncio.Future[None] | None = None
        """Settled when the call that will carry ``_dirty`` is done."""
        self._running: asyncio.Task[None] | None = None

    async def changed(self, keys: Iterable[K]) -> None:
        """Returns once a call that read the state after this change succeeded; raises
        what that call raised."""
        written = self.note(keys)
        if written is not None:
            # shielded: one caller cancelled must not cancel the others' answer
            await asyncio.shield(written)

    def note(self, keys: Iterable[K]) -> asyncio.Future[None] | None:
        """Record a change without waiting for it to be written (the future that says
        when it is, None when ``keys`` is empty); a failed call is the writer's to log."""
        fresh = set(keys)
        if not fresh:
            return None
        self._dirty |= fresh
        loop = asyncio.get_running_loop()
        if self._next is None:
            self._next = loop.create_future()
        if self._running is None:
            # a task starts on the next loop turn: this turn's other changes go along
            self._running = loop.create_task(self._run())
        return self._next

    async def idle(self) -> None:
        """Wait for the call in flight and the ones queued behind it."""
        while self._running is not None:
            await asyncio.wait([self._running])

    async def _run(self) -> None:
        try:
            while self._dirty:
                keys, self._dirty = self._dirty, set()
                written, self._next = self._next, None
                assert written is not None
                try:
                    await self._write(keys)
                except Exception as exc:
                    written.set_exception(exc)
                    written.exception()  # every caller may be gone: not "never retrieved"
                else:
                    written.set_result(None)
                finally:
                    written.cancel()  # cancelled itself (shutdown): nobody waits forever
        finally:
            self._running = None
            if self._next is not None:
                self._next.cancel()
                self._next = None
