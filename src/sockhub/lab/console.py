"""The person at the server's console of C 8, E's homework and B's QQ chat: with
``lab serve --console``, lines typed at the lab's terminal answer those clients."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
from typing import TextIO

__all__ = ["Console"]


class Console:
    """Lines from ``stream`` handed out as answers, one question at a time (as the notes'
    servers serve one client at a time)."""

    def __init__(self, stream: TextIO = sys.stdin, out: TextIO = sys.stderr) -> None:
        self._loop = asyncio.get_running_loop()
        self._lines: asyncio.Queue[str | None] = asyncio.Queue()
        self._turn = asyncio.Lock()
        self._out = out
        self.ended = False
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream: TextIO) -> None:
        # a daemon thread: a blocking read of a terminal cannot be interrupted otherwise;
        # the loop may be closed before the terminal ends, and then nobody waits for lines
        with contextlib.suppress(RuntimeError):
            for line in stream:
                self._loop.call_soon_threadsafe(self._lines.put_nowait, line.rstrip("\r\n"))
            self._loop.call_soon_threadsafe(self._lines.put_nowait, None)

    async def answer(self, who: str, text: str, timeout: float) -> str | None:
        """The next line typed after showing ``who``'s ``text``; None when none comes."""
        if self.ended:
            return None
        async with self._turn:
            print(f"[{who}] {text}\nreply> ", end="", file=self._out, flush=True)
            try:
                line = await asyncio.wait_for(self._lines.get(), timeout)
            except TimeoutError:
                return None
            if line is None:
                self.ended = True
            return line
