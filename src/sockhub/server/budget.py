"""Memory the whole server may hold, by kind: one budget each sessions draw from.

Per-connection limits alone let a thousand connections each hold their allowance at
once. A budget bounds the sum: buffered request bodies wait for room (the session stops
reading until some is given back), outbound backlogs past it make the server refuse new
work with ``limit.busy`` and cut backlogs over their fair share. Defaults derive from the
machine's memory (``server/limits.py``).
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Callable

__all__ = ["Budget"]


class Budget:
    __slots__ = ("_waiters", "holders", "name", "peak", "total", "used")

    def __init__(self, name: str, total: int) -> None:
        self.name = name
        self.total = total
        self.used = 0
        self.peak = 0
        """The most used since the server last gave memory back (``server/trim.py``)."""
        self.holders = 0
        """Sessions holding a share now (kept by those that ``charge``)."""
        self._waiters: deque[Callable[[], bool]] = deque()

    @property
    def spent(self) -> bool:
        return self.used >= self.total

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def take(self, n: int) -> bool:
        """Draw ``n`` bytes if they fit (a draw larger than the whole budget fits an
        empty one, so no single request waits forever)."""
        if self.used + n > self.total and self.used > 0:
            return False
        self.used += n
        if self.used > self.peak:
            self.peak = self.used
        return True

    def charge(self, before: int, after: int) -> None:
        """Account a holding that changed from ``before`` to ``after`` bytes (an outbound
        backlog that grew or shrank)."""
        self.used += after - before
        self.holders += (after > 0) - (before > 0)
        if after < before:
            self._wake()
        elif self.used > self.peak:
            self.peak = self.used

    @property
    def share(self) -> int:
        """A fair share of the budget for each holder."""
        return self.total // max(1, self.holders)

    def give(self, n: int) -> None:
        self.used -= n
        self._wake()

    def wait(self, retry: Callable[[], bool]) -> None:
        """Call ``retry`` when bytes are given back, in order of waiting, until it
        returns True (it got its bytes, or no longer needs them)."""
        self._waiters.append(retry)

    def forget(self, retry: Callable[[], bool]) -> None:
        with contextlib.suppress(ValueError):
            self._waiters.remove(retry)

    def _wake(self) -> None:
        while self._waiters and self.used < self.total:
            if not self._waiters[0]():
                return
            self._waiters.popleft()
