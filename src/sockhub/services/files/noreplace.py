"""Moving a file to a name only if that name is free, in one step: ``renameat2(NOREPLACE)``.

The portable way, ``link`` then ``unlink``, leaves a moment in which the partial and the
published file are two names of one inode: a crash there leaves both, and a later
overwrite that reuses the partial's name would write into the published file. Linux's
``renameat2(RENAME_NOREPLACE)`` (glibc >= 2.28, most local filesystems) moves the name
atomically and fails with EEXIST when the target exists. Where it is missing (another
libc, another OS, a filesystem answering EINVAL), ``link``/``unlink`` is the fallback,
with its window between the two calls (docs/files.md).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
from typing import Any

__all__ = ["rename_noreplace"]

RENAME_NOREPLACE = 1
_UNSUPPORTED = frozenset({errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP})


def _renameat2() -> Any:
    name = ctypes.util.find_library("c")
    try:
        fn = ctypes.CDLL(name, use_errno=True).renameat2
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


_RENAMEAT2 = _renameat2()


def rename_noreplace(src: str, dst: str, *, src_dir_fd: int, dst_dir_fd: int) -> None:
    """Move ``src`` to ``dst``; FileExistsError (nothing moved) when ``dst`` exists."""
    if _RENAMEAT2 is not None:
        done = _RENAMEAT2(
            src_dir_fd, os.fsencode(src), dst_dir_fd, os.fsencode(dst), RENAME_NOREPLACE
        )
        if done == 0:
            return
        code = ctypes.get_errno()
        if code not in _UNSUPPORTED:
            raise OSError(code, os.strerror(code), dst)
    os.link(src, dst, src_dir_fd=src_dir_fd, dst_dir_fd=dst_dir_fd, follow_symlinks=False)
    os.unlink(src, dir_fd=src_dir_fd)
