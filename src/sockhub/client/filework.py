"""What both clients' file methods share: results, request fields, local files.

Transfers land safely on this side too: a download is written to a hidden partial file
beside its target (``.NAME.sockhub-part``), hashed as it is written, and renamed into
place only when its sha256 matches the one the server sent; an interrupted download
resumes from what the partial holds. Names received from a server are checked with
the protocol's path rules before they are joined onto a local folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..protocol.errors import FileExists, FileHashMismatch, ProtocolError
from ..protocol.paths import check_name, check_path
from .common import Reply

__all__ = [
    "Entry",
    "FileInfo",
    "GetPlan",
    "Listing",
    "LocalPartial",
    "Progress",
    "PutPlan",
    "Transfer",
    "file_sha256",
    "local_name",
]

Progress = Callable[[int, int], object]
"""Called as bytes move with (bytes the receiving side holds, total)."""

PART_SUFFIX = ".sockhub-part"
SLICE = 8 * 1024 * 1024
"""Bytes sent between two progress reports on an upload."""
_QUEUED = 64
"""Chunks of a download that may wait for the local disk before the reader blocks."""
INLINE = 1024 * 1024
"""Files up to this size are hashed and written by the caller: a thread costs more."""


@dataclass(frozen=True, slots=True)
class Transfer:
    """What a put or get did: the file's size and sha256, and what crossed the wire."""

    path: str
    local: Path
    size: int
    sha256: str
    sent: int
    """Bytes that actually crossed the network this time (0 when nothing had to move)."""
    offset: int = 0
    """Where this transfer started: bytes an earlier, interrupted one had already moved."""
    unchanged: bool = False
    """A put found the same content already on the server and sent nothing."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One name in a remote directory listing."""

    name: str
    type: str
    size: int | None
    mtime: float

    @property
    def is_dir(self) -> bool:
        return self.type == "dir"


@dataclass(frozen=True, slots=True)
class FileInfo:
    path: str
    type: str
    size: int | None
    mtime: float
    sha256: str | None = None

    @classmethod
    def from_reply(cls, reply: Reply) -> FileInfo:
        h = reply.header
        return cls(
            path=str(h.get("path", "")),
            type=str(h.get("type", "")),
            size=_opt_int(h.get("total")),
            mtime=_float(h.get("mtime")),
            sha256=h["sha256"] if isinstance(h.get("sha256"), str) else None,
        )


def _opt_int(value: object) -> int | None:
    return value if value.__class__ is int else None


def _float(value: object) -> float:
    return float(value) if value.__class__ in (int, float) else 0.0


def entries_of(reply: Reply) -> tuple[list[Entry], str | None]:
    """A listing page's entries (names that break the path rules left out) and the
    cursor for the next page (None after the last)."""
    out = []
    raw = reply.header.get("entries")
    for item in raw if isinstance(raw, list) else []:
        name = item.get("name") if isinstance(item, dict) else None
        if not isinstance(name, str):
            continue
        try:
            check_name(name)
        except ProtocolError:
            continue
        kind = "dir" if item.get("type") == "dir" else "file"
        out.append(Entry(name, kind, _opt_int(item.get("size")), _float(item.get("mtime"))))
    more = reply.header.get("more") is True and out
    return out, (out[-1].name if more else None)


class Listing:
    """A directory listing being gathered page by page (``file.list`` with ``after``)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.entries: list[Entry] = []
        self.after: str | None = ""

    @property
    def done(self) -> bool:
        return self.after is None

    def fields(self) -> dict[str, Any]:
        return {"path": self.path, "after": self.after} if self.after else {"path": self.path}

    def add(self, reply: Reply) -> None:
        entries, self.after = entries_of(reply)
        self.entries += entries


@dataclass(slots=True)
class PutPlan:
    """One upload's request fields, and which retry an error calls for.

    ``file.exists`` without ``overwrite``: ask again with the sha256, so the same content
    is accepted without a transfer. ``file.hash_mismatch`` after a resume: the server's
    partial came from other content and is gone, so start once more from byte 0.
    """

    remote: str
    total: int
    overwrite: bool
    sha256: str | None = None
    offset: int = 0
    fresh: bool = False

    def fields(self) -> dict[str, Any]:
        check_path(self.remote)
        fields: dict[str, Any] = {
            "path": self.remote,
            "total": self.total,
            "overwrite": self.overwrite,
        }
        if self.sha256 is not None:
            fields["sha256"] = self.sha256
        return fields

    def retry(self, exc: ProtocolError) -> bool:
        """After ``exc``: whether to hash the file before asking again; raises ``exc``
        when no retry helps."""
        if isinstance(exc, FileExists) and not self.overwrite and self.sha256 is None:
            return True
        if isinstance(exc, FileHashMismatch) and self.offset > 0 and not self.fresh:
            self.fresh = True
            return False
        raise exc


def file_sha256(file: io.BufferedIOBase) -> str:
    """sha256 of a whole local file from its start (releases the GIL while it reads)."""
    file.seek(0)
    return hashlib.file_digest(file, "sha256").hexdigest()


def local_name(remote: str) -> str:
    """The last segment of a checked remote path: a name safe to create locally."""
    return check_path(remote)[-1]


def server_sha(reply: Reply) -> str:
    sha = reply.header.get("sha256")
    if not isinstance(sha, str) or len(sha) != 64:
        raise FileHashMismatch("the server sent no usable sha256")
    return sha.lower()


class GetPlan:
    """One download: its local partial, published when verified, kept when interrupted.

    A resumed download whose whole-file hash is wrong (the partial held bytes of another
    version) starts once more from byte 0.
    """

    def __init__(self, target: Path) -> None:
        self.part = LocalPartial(target)
        self.restarted = False

    def retry(self, exc: FileHashMismatch) -> None:
        """Start again from byte 0 after ``exc``, or raise it when that cannot help."""
        if self.part.offset == 0 or self.restarted:
            raise exc
        self.restarted = True
        self.part.restart()

    def done(self, result: Transfer) -> Transfer:
        self.part.publish()
        return result

    def __enter__(self) -> GetPlan:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: object, tb: object) -> None:
        if kind is not None and not self.part.file.closed:
            self.part.abort(keep=not issubclass(kind, FileHashMismatch))


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
