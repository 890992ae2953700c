"""The script connections, corked for one loop turn: every script asked for during a
turn (one per room with messages) goes to each Redis node in one write.

A write to Redis's socket wakes redis-server, and on a loaded host that wake-up costs
far more than the bytes: measured, the one write per script call took about a tenth
of a worker's CPU with ten busy rooms. Pipelined replies come back in order, so the
callers see no difference but the shared write.
"""

from __future__ import annotations

import asyncio

from .redis_conn import Pipe

__all__ = ["CorkedPipe"]


class CorkedPipe(Pipe):
    """``Pipe`` that gathers a loop turn's commands and writes them at its end."""

    def __init__(self) -> None:
        super().__init__()
        self._corked: list[bytes] = []

    def _write(self, data: bytes) -> None:
        if self._transport is None or self.lost:
            raise ConnectionError("the connection to Redis is closed")
        if not self._corked:
            asyncio.get_running_loop().call_soon(self._uncork)
        self._corked.append(data)

    def _uncork(self) -> None:
        data = b"".join(self._corked)
        self._corked.clear()
        if self._transport is not None and not self.lost:
            self._transport.write(data)
