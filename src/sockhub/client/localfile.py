"""The local side of file transfers: partial files for downloads, hashes of files sent.

A download is written to a hidden partial file beside its target
(``.NAME.sockhub-part``), opened without following a symlink, hashed as it is written,
and renamed into place only once verified; an interrupted download resumes from it.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

__all__ = ["INLINE", "PART_SUFFIX", "SLICE", "LocalPartial", "file_sha256", "hashing"]

PART_SUFFIX = ".sockhub-part"


SLICE = 8 * 1024 * 1024
"""Bytes sent between two progress reports on an upload."""


_QUEUED = 64
"""Chunks of a download that may wait for the local disk before the reader blocks."""


INLINE = 1024 * 1024
"""Files up to this size are hashed and written by the caller: a thread costs more."""


def file_sha256(file: io.BufferedIOBase) -> str:
    """sha256 of a whole local file from its start (releases the GIL while it reads)."""
    file.seek(0)
    return hashlib.file_digest(file, "sha256").hexdigest()


def hashing(path: Path, src: io.BufferedReader, size: int) -> Future[str]:
    """The sha256 of a file being sent: on a thread, through its own open file (sendfile
    moves ours), so it overlaps the sending; small files are hashed at once."""
    result: Future[str] = Future()
    ino = os.fstat(src.fileno()).st_ino

    def run() -> None:
        try:
            with open(path, "rb") as file:
                if os.fstat(file.fileno()).st_ino != ino:
                    raise OSError(f"{path} was replaced while it was being sent")
                result.set_result(file_sha256(file))
        except BaseException as exc:
            result.set_exception(exc)

    if size <= INLINE:
        run()
    else:
        threading.Thread(target=run, name="sockhub-put-hash", daemon=True).start()
    return result


class _Lane:
    """A worker thread fed through a bounded queue: one for writing, one for hashing."""

    def __init__(self, work: Callable[[bytes], object], name: str) -> None:
        self._work = work
        self.queue: queue.Queue[bytes | None] = queue.Queue(_QUEUED)
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while (chunk := self.queue.get()) is not None:
                self._work(chunk)
        except BaseException as exc:
            self.error = exc
            while self.queue.get() is not None:
                pass

    def finish(self) -> None:
        self.queue.put(None)
        self._thread.join()
        if self.error is not None:
            raise self.error


class LocalPartial:
    """A download's hidden partial file beside ``target``, written and hashed as it comes.

    The hash starts with the bytes the partial already holds (a resume), so the sha256
    of the whole file is known the moment the last byte is written. Small downloads
    are written inline; past ``INLINE`` bytes two threads take over, one writing and
    one hashing, so disk, hash and network all overlap.
    """

    def __init__(self, target: Path) -> None:
        self.target = target
        self.path = target.with_name(f".{target.name}{PART_SUFFIX}")
        target.parent.mkdir(parents=True, exist_ok=True)
        flags = os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC
        self.file = os.fdopen(os.open(self.path, flags, 0o666), "ab+")
        self.offset = self.file.tell()
        self._reset()

    def _reset(self) -> None:
        self.written = self.offset
        self._hash: Any = None
        self._lanes: tuple[_Lane, _Lane] | None = None

    def restart(self) -> None:
        """Throw away what the partial holds and start again from byte 0."""
        self.finish_writes()
        self.file.truncate(0)
        self.offset = 0
        self._reset()

    def _hash_update(self, chunk: bytes) -> None:
        if self._hash is None:
            self._hash = self._held_hash()
        self._hash.update(chunk)

    def _held_hash(self) -> Any:
        """sha256 of the bytes a resumed partial already holds (read through a file of its
        own: the writer may be appending meanwhile)."""
        digest = hashlib.sha256()
        left = self.offset
        if not left:
            return digest
        with open(self.path, "rb") as held:
            while left:
                block = held.read(min(left, SLICE))
                if not block:
                    raise OSError(f"{self.path} shrank while it was being resumed")
                digest.update(block)
                left -= len(block)
        return digest

    def put_nowait(self, chunk: bytes) -> bool:
        """Take a chunk unless the threads' queues are full (the async client then waits)."""
        if self._lanes is None and self.written - self.offset + len(chunk) > INLINE:
            self._lanes = (
                _Lane(self.file.write, "sockhub-get-write"),
                _Lane(self._hash_update, "sockhub-get-hash"),
            )
        if self._lanes is None:
            self.file.write(chunk)
            self._hash_update(chunk)
        elif any(lane.queue.full() for lane in self._lanes):
            return False
        else:
            for lane in self._lanes:
                lane.queue.put_nowait(chunk)
        self.written += len(chunk)
        return True

    def put(self, chunk: bytes) -> None:
        if not self.put_nowait(chunk):
            assert self._lanes is not None
            for lane in self._lanes:
                lane.queue.put(chunk)
            self.written += len(chunk)

    def finish_writes(self) -> str:
        """Wait for every queued byte to be written; the sha256 of the whole partial."""
        lanes, self._lanes = self._lanes, None
        for lane in lanes or ():
            lane.finish()
        self.file.flush()
        if self._hash is None:
            self._hash_update(b"")
        return str(self._hash.hexdigest())

    def publish(self) -> None:
        """Rename the verified partial over the target."""
        os.fsync(self.file.fileno())
        self.file.close()
        os.replace(self.path, self.target)

    def abort(self, keep: bool) -> None:
        """Stop; keep the partial for a resume (when it holds anything), or remove it."""
        with contextlib.suppress(Exception):
            self.finish_writes()
        self.file.close()
        if not keep or self.written == 0:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
