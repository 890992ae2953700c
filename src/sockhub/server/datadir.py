"""Where a server keeps its data, found the same way from anywhere, and held by one server.

The folder is ``--data``, else ``SOCKHUB_DATA``, else the platform's data directory
(``$XDG_DATA_HOME/sockhub``, ``~/.local/share/sockhub``): never the current directory, so
``sockhub user add`` run elsewhere edits the users the running server reads. A server
holds an exclusive lock on ``server.lock`` in it while it runs, so a second server on the
same folder (which would split the chat numbering and race on every file) is refused,
naming the folder and the PID holding it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Mapping
from pathlib import Path

__all__ = [
    "DataInUse",
    "data_folder",
    "default_data_folder",
    "lock_data_folder",
    "unlock_data_folder",
]

LOCK_NAME = "server.lock"


class DataInUse(Exception):
    """Another server holds the folder; the message names it and the holder's PID."""


def default_data_folder(env: Mapping[str, str] | None = None) -> Path:
    """``SOCKHUB_DATA``, else ``$XDG_DATA_HOME/sockhub``, else ``~/.local/share/sockhub``."""
    env = os.environ if env is None else env
    if env.get("SOCKHUB_DATA"):
        return Path(env["SOCKHUB_DATA"]).expanduser()
    xdg = env.get("XDG_DATA_HOME", "")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".local" / "share"
    return base / "sockhub"


def data_folder(given: str | os.PathLike[str] | None, env: Mapping[str, str] | None = None) -> Path:
    """The folder a command works on: the one given, else the default."""
    return Path(given).expanduser() if given else default_data_folder(env)


def lock_data_folder(folder: Path) -> int:
    """Take the folder for this process (until it exits); the lock file says who holds it.

    Returns the descriptor that holds the lock: keep it open for as long as the server
    runs. The kernel drops the lock when the process ends, however it ends.
    """
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode("ascii", "replace").strip() or "unknown"
        os.close(fd)
        raise DataInUse(
            f"data folder {folder.resolve()} is in use by another sockhub server "
            f"(PID {holder}); stop that one, or give this one its own with --data DIR"
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def unlock_data_folder(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.ftruncate(fd, 0)
    os.close(fd)
