"""``sockhub exec -t``: this terminal drives a remote pseudo-terminal, as with ``ssh -t``.

The local terminal goes to raw mode, so every key (Ctrl-C, Ctrl-Z, arrows, Ctrl-D) is
sent as the byte it types and the remote terminal's line discipline gives it meaning;
window-size changes follow as ``exec.resize``; signals sent to this process (TERM, HUP)
are passed on to the remote group. The terminal is restored however the run ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import termios
import tty
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from ..client.exec import AsyncRemoteProcess, Completed

__all__ = ["pty_fields", "raw_terminal", "run_on_pty", "wants_pty"]

_FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)


def wants_pty(force: bool | None, json: bool) -> bool:
    """``-t`` forces a pty, ``-T`` refuses one; by default, one when both ends are a terminal."""
    if force is not None:
        return force
    return not json and os.isatty(0) and os.isatty(1)


def _size() -> os.terminal_size:
    """The terminal's own size (COLUMNS/LINES in the environment may be stale)."""
    for fd in (1, 0, 2):
        with contextlib.suppress(OSError):
            return os.get_terminal_size(fd)
    return shutil.get_terminal_size()


def pty_fields() -> dict[str, Any]:
    """The pty request; a size the terminal does not know (0, a bare pty) is left to the
    server's default."""
    size = _size()
    fields: dict[str, Any] = {"term": os.environ.get("TERM") or "xterm-256color"}
    if size.columns > 0 and size.lines > 0:
        fields.update(cols=size.columns, rows=size.lines)
    return fields


@contextlib.contextmanager
def raw_terminal() -> Iterator[None]:
    """Raw mode on stdin while inside, when stdin is a terminal; restored on the way out."""
    if not os.isatty(0):
        yield
        return
    saved = termios.tcgetattr(0)
    tty.setraw(0, termios.TCSANOW)  # keys typed ahead are kept, not flushed
    try:
        yield
    finally:
        termios.tcsetattr(0, termios.TCSADRAIN, saved)


def _follow_window(proc: AsyncRemoteProcess, loop: asyncio.AbstractEventLoop) -> None:
    def resized() -> None:
        size = _size()
        if size.columns > 0 and size.lines > 0:
            proc.resize(size.columns, size.lines)

    loop.add_signal_handler(signal.SIGWINCH, resized)
    for sig in _FORWARDED:
        loop.add_signal_handler(sig, proc.kill, signal.Signals(sig).name.removeprefix("SIG"))


async def run_on_pty(
    proc: AsyncRemoteProcess, stream: Callable[[AsyncRemoteProcess], Awaitable[Completed]]
) -> Completed:
    """Show the remote terminal here (``stream``) in raw mode until the command ends."""
    loop = asyncio.get_running_loop()
    _follow_window(proc, loop)
    try:
        with raw_terminal():
            return await stream(proc)
    finally:
        for sig in (signal.SIGWINCH, *_FORWARDED):
            loop.remove_signal_handler(sig)
