"""``file.get`` (PROTOCOL.md section 7, download): zero-copy out, sha256 after the data.

A ``length`` asks for a window of the file: a client that cannot slow its socket's
reads (a page: the browser reads a WebSocket as fast as it comes) paces itself by the
windows it asks for. Only the window that reaches the end carries the sha256, so the
file is hashed once, not once per window.

The header and body are queued together with ``Session.send_file`` (``os.sendfile`` from the page cache on
plain sockets). The sha256 that follows it comes from the hash store; for a file the
server did not write, it is computed on a worker thread from the same open fd while
the bytes are being sent, so no one waits for a second pass.
"""

from __future__ import annotations

import asyncio
import os
import stat
import threading

from ...protocol.errors import BadRequest, FileIsDir, FileNotFound
from ...protocol.fields import get_int
from ...protocol.frames import MAX_SIZE
from ...protocol.paths import check_path
from ...server.service import Request
from .store import Store, fs_errors

__all__ = ["Downloads", "open_regular"]


def open_regular(store: Store, segments: tuple[str, ...], path: str) -> tuple[int, os.stat_result]:
    """An fd open for reading on the regular file at ``path``, and its fstat."""
    with fs_errors(path), store.tree.locate(segments) as spot:
        st = spot.lstat()
        if st is None:
            raise FileNotFound(f"{path}: no such file")
        if stat.S_ISDIR(st.st_mode):
            raise FileIsDir(f"{path} is a directory")
        if not stat.S_ISREG(st.st_mode):
            raise FileNotFound(f"{path} is not a regular file")
        return spot.open_regular()


class Downloads:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def get(self, req: Request) -> None:
        store = self.store
        segments = check_path(req.header.get("path"))
        path = "/".join(segments)
        offset = get_int(req.header, "offset", 0, lo=0, hi=MAX_SIZE)
        length = get_int(req.header, "length", MAX_SIZE, lo=1, hi=MAX_SIZE)
        fd, st = await store.run(open_regular, store, segments, path)
        stop = threading.Event()
        hashing: asyncio.Future[str] | None = None
        try:
            total = st.st_size
            if offset > total:
                raise BadRequest(f"field 'offset' is past the end of {path} ({total} bytes)")
            size = min(length, total - offset)
            last = offset + size == total
            sha = await store.run(store.hashes.get, st) if last else None
            if last and sha is None:
                hashing = store.loop.run_in_executor(store.executor, store.file_hash, fd, st, stop)
            header = {"op": "file.data", "path": path, "total": total, "offset": offset}
            if req.id is not None:
                header["re"] = req.id
            with os.fdopen(os.dup(fd), "rb", buffering=0) as file:
                await req.session.send_file(header, file, offset, size)
            if hashing is not None:
                sha = await hashing
            req.reply({"op": "file.end", "sha256": sha} if last else {"op": "file.end"})
        finally:
            stop.set()
            if hashing is not None:
                await asyncio.gather(hashing, return_exceptions=True)
            os.close(fd)
