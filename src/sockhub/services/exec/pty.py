"""A run on a pseudo-terminal (``exec.run`` with ``"pty"``): what ``ssh -t`` gives a program.

Interactive programs (a shell, an editor, a REPL, ``top``) need a terminal: line editing,
job control and Ctrl-C come from the terminal's line discipline, not from the client. The
command gets the pty's slave as stdin, stdout, stderr and controlling terminal; the server
reads and writes the master. Nothing here knows the transport: the same op serves the CLI
and a browser terminal alike.

A pty merges stdout and stderr; its output is sent as ``stdout``. The master is read
through a duplicate of its descriptor and written through another, so the existing pipe
movers (``pipes.py``) can own and close them independently.
"""

from __future__ import annotations

import fcntl
import os
import struct
import subprocess
import termios
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...protocol.errors import BadRequest

__all__ = ["PtySpec", "open_pty", "parse_pty", "parse_size", "set_size"]

DEFAULT_COLS, DEFAULT_ROWS, DEFAULT_TERM = 80, 24, "xterm-256color"
MAX_SIDE = 10_000
"""Columns or rows beyond any real screen are a mistake, not a terminal."""


@dataclass(frozen=True, slots=True)
class PtySpec:
    cols: int
    rows: int
    term: str


def _side(fields: dict[str, Any], name: str, default: int) -> int:
    value = fields.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_SIDE:
        raise BadRequest(f"field '{name}' must be a whole number from 1 to {MAX_SIDE}")
    return value


def parse_size(fields: dict[str, Any]) -> tuple[int, int]:
    """``cols`` and ``rows`` of a request (``exec.resize``, or the ``pty`` object)."""
    return _side(fields, "cols", DEFAULT_COLS), _side(fields, "rows", DEFAULT_ROWS)


def parse_pty(header: dict[str, Any]) -> PtySpec | None:
    """The ``pty`` field: absent or false for pipes, true or ``{cols, rows, term}`` for a pty."""
    value = header.get("pty", False)
    if value is False or value is None:
        return None
    if value is True:
        value = {}
    if not isinstance(value, dict):
        raise BadRequest("field 'pty' must be true or an object {cols, rows, term}")
    term = value.get("term", DEFAULT_TERM)
    if not isinstance(term, str) or not term or not term.isprintable() or len(term) > 64:
        raise BadRequest("field 'pty.term' must be a terminal name like xterm-256color")
    cols, rows = parse_size(value)
    return PtySpec(cols, rows, term)


def set_size(fd: int, cols: int, rows: int) -> None:
    """Tell the terminal its size; the kernel sends SIGWINCH to its foreground group."""
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def _take_terminal() -> None:
    """In the child, after setsid: the slave (fd 0) becomes its controlling terminal."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def open_pty(
    argv: Sequence[str], cwd: Path, env: dict[str, str], spec: PtySpec, controlling: bool = True
) -> tuple[subprocess.Popen[bytes], int, int]:
    """Start ``argv`` on a new pty; returns the process and two non-blocking master fds
    (one to read, one to write). OSErrors of the start propagate as from ``Popen``.
    ``controlling``: the pty becomes the new session's controlling terminal here; False when
    ``argv`` takes it itself further in (a sandbox's command).
    """
    master, slave = os.openpty()
    try:
        set_size(master, spec.cols, spec.rows)
        popen = subprocess.Popen(
            list(argv),
            stdin=slave,
            stdout=slave,
            stderr=slave,
            cwd=cwd,
            env={**env, "TERM": spec.term},
            start_new_session=True,
            close_fds=True,
            preexec_fn=_take_terminal if controlling else None,
        )
    except BaseException:
        os.close(master)
        raise
    finally:
        os.close(slave)
    writer = os.dup(master)
    for fd in (master, writer):
        os.set_blocking(fd, False)
    return popen, master, writer
