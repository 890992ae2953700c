"""The files root, walked one directory fd at a time so no symlink can lead out of it.

``os.path.join(root, name)`` then ``open`` is the course's bug: a ``..``, an absolute
path or a symlink planted in the tree (or swapped in for a directory while a transfer
runs) reaches any file the server can read. Here every step is an ``openat`` relative to
a directory fd we already hold, with ``O_NOFOLLOW``; a symlink met on the way is read
and its target walked the same way, lexically, with ``..`` popping our own stack of
directories, so it may point anywhere *inside* the root but never outside it. Nothing
is resolved by name twice: a swap between two steps makes the next step fail closed.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ...protocol.errors import (
    FileBadPath,
    FileExists,
    FileIsDir,
    FileNotDir,
    FileNotEmpty,
    FileNotFound,
    FileQuota,
    FileTooLarge,
    LimitBusy,
    ProtocolError,
)

__all__ = ["MAX_LINKS", "Spot", "Tree", "os_error"]

MAX_LINKS = 40
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_ERRNO: dict[int, type[ProtocolError]] = {
    errno.ENOENT: FileNotFound,
    errno.ENOTDIR: FileNotDir,
    errno.EISDIR: FileIsDir,
    errno.EEXIST: FileExists,
    errno.ENOTEMPTY: FileNotEmpty,
    errno.ELOOP: FileBadPath,
    errno.ENAMETOOLONG: FileBadPath,
    errno.ENOSPC: FileQuota,
    errno.EDQUOT: FileQuota,
    errno.EFBIG: FileTooLarge,
    errno.EMFILE: LimitBusy,
    errno.ENFILE: LimitBusy,
}


def os_error(exc: OSError, path: str) -> OSError | ProtocolError:
    """The protocol error an ``OSError`` on ``path`` means; unknown errnos stay OSErrors."""
    cls = _ERRNO.get(exc.errno or 0)
    if cls is None:
        return exc
    if cls is FileQuota:
        return FileQuota("the server's disk is full")
    if cls is FileTooLarge:
        return FileTooLarge("the file is too large for the server's disk")
    if cls is LimitBusy:
        return LimitBusy("the server is out of file descriptors; try again later")
    return cls(f"{path}: {os.strerror(exc.errno or 0).lower()}")


@dataclass(slots=True)
class Spot:
    """Where a path landed: an fd of its (real) parent directory and the name inside it.

    ``name`` is None for the root itself. The fd belongs to the spot: use it in ``with``.
    """

    dir_fd: int
    name: str | None
    path: str
    made: int = 0
    """Directories ``make_dirs`` created on the way here (each is an inode of the quota)."""

    def close(self) -> None:
        os.close(self.dir_fd)

    def __enter__(self) -> Spot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def lstat(self) -> os.stat_result | None:
        """The entry itself (never followed), or None when nothing is there."""
        if self.name is None:
            return os.fstat(self.dir_fd)
        try:
            return os.stat(self.name, dir_fd=self.dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return None

    def open_dir(self) -> int:
        if self.name is None:
            return os.dup(self.dir_fd)
        return os.open(self.name, _DIR_FLAGS, dir_fd=self.dir_fd)

    def open_file(self, flags: int = os.O_RDONLY) -> int:
        assert self.name is not None
        return os.open(self.name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=self.dir_fd)

    def open_regular(self) -> tuple[int, os.stat_result]:
        """An fd for reading the regular file here, and its fstat; anything else is refused.

        Opened with O_NONBLOCK, so a FIFO (or a device) planted in the tree cannot hold a
        worker thread in ``open``; only what fstat then calls a regular file is kept,
        which also closes the gap between an lstat and the open.
        """
        fd = self.open_file(os.O_RDONLY | os.O_NONBLOCK)
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            if stat.S_ISDIR(st.st_mode):
                raise FileIsDir(f"{self.path} is a directory")
            raise FileNotFound(f"{self.path} is not a regular file")
        os.set_blocking(fd, True)
        return fd, st


class Tree:
    """The files root, held open as a directory fd for the server's lifetime."""

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self.real = os.path.realpath(root)
        self.fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)

    def close(self) -> None:
        os.close(self.fd)

    def locate(
        self, segments: tuple[str, ...], *, follow_last: bool = True, make_dirs: bool = False
    ) -> Spot:
        """The spot for checked ``segments``; symlinks are followed while they stay inside.

        ``follow_last=False`` keeps a final symlink itself (delete removes the link, not
        its target). ``make_dirs`` creates missing directories on the way (a put).
        Raises ``FileBadPath`` for an escape, ``FileNotDir``/``FileNotFound`` on the way.
        """
        path = "/".join(segments)
        stack: list[int] = []
        todo = list(reversed(segments))
        links = made = 0
        try:
            while todo:
                name = todo.pop()
                if name in ("", "."):
                    continue
                if name == "..":
                    if not stack:
                        raise FileBadPath(f"{path}: a symlink leads out of the files root")
                    os.close(stack.pop())
                    continue
                here = stack[-1] if stack else self.fd
                last = not todo
                target = self._link_target(here, name) if (follow_last or not last) else None
                if target is not None:
                    links += 1
                    if links > MAX_LINKS:
                        raise FileBadPath(f"{path}: too many symlinks")
                    if target.startswith("/"):
                        target = self._inside(target, path)
                        for fd in stack:
                            os.close(fd)
                        stack.clear()
                    todo.extend(reversed(target.split("/")))
                    continue
                if last:
                    return Spot(os.dup(here), name, path, made)
                fd, created = self._enter(here, name, path, make_dirs)
                stack.append(fd)
                made += created
            return Spot(os.dup(stack[-1] if stack else self.fd), None, path, made)
        finally:
            for fd in stack:
                os.close(fd)

    def _link_target(self, here: int, name: str) -> str | None:
        """What ``name`` points to when it is a symlink (None when it is not one)."""
        try:
            return os.readlink(name, dir_fd=here)
        except OSError as exc:
            if exc.errno in (errno.EINVAL, errno.ENOENT):
                return None
            raise

    def _inside(self, target: str, path: str) -> str:
        """An absolute symlink target as a path from the root, if it points inside it."""
        real = os.path.normpath(target)
        if real == self.real:
            return ""
        if real.startswith(self.real.rstrip("/") + "/"):
            return real[len(self.real.rstrip("/")) + 1 :]
        raise FileBadPath(f"{path}: a symlink leads out of the files root")

    def _enter(self, here: int, name: str, path: str, make_dirs: bool) -> tuple[int, bool]:
        """An fd for directory ``name`` in ``here``, never through a symlink; made by us?"""
        created = False
        for _ in range(2):
            try:
                return os.open(name, _DIR_FLAGS, dir_fd=here), created
            except FileNotFoundError:
                if not make_dirs:
                    raise FileNotFound(f"{path}: no such directory on the way") from None
                with contextlib.suppress(FileExistsError):
                    os.mkdir(name, 0o755, dir_fd=here)
                    created = True
            except NotADirectoryError:
                raise FileNotDir(f"{path}: {name} is not a directory") from None
            except OSError as exc:
                raise os_error(exc, path) from exc
        raise FileBadPath(f"{path}: {name} changed while it was walked")

    @contextlib.contextmanager
    def folder(self, segments: tuple[str, ...]) -> Iterator[int]:
        """An fd of the directory at ``segments`` (links resolved inside the root)."""
        with self.locate(segments) as spot:
            st = spot.lstat()
            if st is None:
                raise FileNotFound(f"{spot.path or '/'}: no such directory")
            if not stat.S_ISDIR(st.st_mode):
                raise FileNotDir(f"{spot.path}: not a directory")
            fd = spot.open_dir()
        try:
            yield fd
        finally:
            os.close(fd)

    def entry_stat(
        self, dir_fd: int, segments: tuple[str, ...], name: str
    ) -> os.stat_result | None:
        """A folder entry that can be listed: a regular file or a directory, links
        resolved inside the root. Anything else (sockets, devices, FIFOs, links that lead
        outside the root or nowhere, an entry gone meanwhile) is None: nothing can be done
        with it over the wire."""
        try:
            st: os.stat_result | None = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            if st is not None and stat.S_ISLNK(st.st_mode):
                with self.locate((*segments, name)) as spot:
                    st = spot.lstat()
        except (OSError, ProtocolError):
            return None
        if st is None or not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
            return None
        return st
