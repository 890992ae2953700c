"""The server's own background work: periodic checks and service tasks it owns.

A task nobody owns dies silently and takes its job with it (one exception in the old
sweeper ended every timeout for the life of the process). Here a periodic check that
raises is logged and runs again at its next tick, and shutdown cancels and awaits every
task, so nothing outlives the server.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

__all__ = ["Background"]

log = logging.getLogger("sockhub.server")


class Background:
    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False

    def spawn(self, coro: Coroutine[Any, Any, object], name: str) -> asyncio.Task[Any]:
        """Run ``coro`` until it ends or the server stops; a failure is logged."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        if self._closed:
            task.cancel()
        return task

    def every(
        self, interval: float, check: Callable[[], Awaitable[object] | object], name: str
    ) -> asyncio.Task[Any]:
        """Call ``check`` every ``interval`` seconds (awaiting it if it is a coroutine
        function); one that raises is logged and called again at the next tick."""
        return self.spawn(self._repeat(interval, check, name), name)

    @staticmethod
    async def _repeat(
        interval: float, check: Callable[[], Awaitable[object] | object], name: str
    ) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                result = check()
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("%s failed; it runs again in %g s", name, interval)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("background task %s failed", task.get_name(), exc_info=exc)

    async def close(self) -> None:
        """Cancel every task and wait until all have ended."""
        self._closed = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
