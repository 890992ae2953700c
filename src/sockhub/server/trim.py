"""Give freed memory back to the system once a burst of buffered bytes is over.

glibc keeps freed heap memory for reuse, and after large frees it raises its mmap
threshold so later large buffers come from the heap too: a server that held its whole
memory budget for a while would keep that RSS forever. After the budgets' use has fallen
well below its peak, ``malloc_trim`` returns the free pages. Elsewhere (no glibc) this
does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable, Iterable

from .budget import Budget

__all__ = ["Trimmer"]

_WORTH = 8 << 20
"""Bytes the budgets must have given back since their peak before a trim is worth it."""
_CONNECTIONS = 100
"""Or connections that must have left since their peak (each had read buffers)."""


def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim: Callable[[int], int] = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None
    return trim


class Trimmer:
    def __init__(self, budgets: Iterable[Budget]) -> None:
        self._budgets = tuple(budgets)
        self.departed = 0
        """Connections that ended since the last trim (the server counts them)."""
        self._trim = _malloc_trim()

    def check(self) -> None:
        """Called by the sweeper: trim once the budgets' use has fallen well below its
        peak, or many connections (each with its read buffers) have left."""
        fallen = sum(b.peak - b.used for b in self._budgets)
        if fallen < _WORTH and self.departed < _CONNECTIONS:
            return
        if self._trim is not None:
            self._trim(0)
        self.departed = 0
        for budget in self._budgets:
            budget.peak = budget.used
