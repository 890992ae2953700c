"""Writing a user's new key to a 0600 file, so the key never passes through a shell redirect.

A redirect (``> alice.key``) creates the file with the shell's umask (often 0644, readable
by everyone) and truncates whatever was there. Here the file is created by the CLI itself,
mode 0600 from the first byte, and an existing file is kept unless ``--force`` is given.
The file is claimed *before* users.json changes, so a refusal changes nothing.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

__all__ = ["KeyFileError", "key_out"]


class KeyFileError(OSError):
    """The key file cannot be created; the message is for the operator."""


@contextlib.contextmanager
def key_out(path: Path, *, force: bool) -> Iterator[Callable[[str], None]]:
    """Claim ``path`` and yield a writer for the key; on failure nothing is left behind.

    Without ``force`` the file is created with O_EXCL (an existing file or symlink is
    refused). With ``force`` the key goes to a 0600 temporary beside it that replaces the
    old file by rename, so a failed run never leaves a truncated key.
    """
    if force:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent or Path("."))
        made = Path(tmp)
    else:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        except FileExistsError as exc:
            raise KeyFileError(f"{path} exists; pass --force to replace it") from exc
        except OSError as exc:
            raise KeyFileError(f"cannot create {path}: {exc.strerror}") from exc
        made = path
    written = False

    def write(key: str) -> None:
        nonlocal written
        os.fchmod(fd, 0o600)
        os.write(fd, (key + "\n").encode())
        os.fsync(fd)
        written = True

    try:
        yield write
    finally:
        os.close(fd)
        if not written:
            made.unlink(missing_ok=True)
        elif force:
            os.replace(made, path)
