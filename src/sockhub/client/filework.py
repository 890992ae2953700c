"""What both clients' file methods share: results, request shapes, reply checks, plans.

Everything here is about the protocol's side of a transfer (what to ask, what a reply
means, when to ask again); ``localfile`` holds the local disk's side, and the sync and
async modules only move bytes their own way.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

from ..protocol.errors import FileExists, FileHashMismatch, ProtocolError
from ..protocol.frames import encode_frame, encode_header
from ..protocol.paths import check_name, check_path
from .common import Reply
from .localfile import LocalPartial

if TYPE_CHECKING:
    from .aio import Chunk

__all__ = [
    "DATA",
    "READY",
    "Entry",
    "FileInfo",
    "GetPlan",
    "Listing",
    "Progress",
    "PutOptions",
    "PutPlan",
    "Transfer",
    "data_header",
    "download_target",
    "end_frame",
    "entries_of",
    "got_reply",
    "local_name",
    "ready_or_done",
    "report",
    "sent_result",
    "server_sha",
    "verified",
]

READY = ("file.ready",)
DATA = ("file.data",)

Progress = Callable[[int, int], object]
"""Called as bytes move with (bytes the receiving side holds, total)."""


class PutOptions(TypedDict, total=False):
    """The keyword options of both clients' ``put``.

    ``overwrite`` (default False) replaces an existing file; ``sha256=True`` hashes the
    file first so the server skips it when it already holds the same content (even
    with ``overwrite``), a hex string is trusted as is; ``progress`` is called as bytes
    move.
    """

    overwrite: bool
    sha256: str | bool | None
    progress: Progress | None


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


def local_name(remote: str) -> str:
    """The last segment of a checked remote path: a name safe to create locally."""
    return check_path(remote)[-1]


def server_sha(reply: Reply) -> str:
    sha = reply.header.get("sha256")
    if not isinstance(sha, str) or len(sha) != 64:
        raise FileHashMismatch("the server sent no usable sha256")
    return sha.lower()


def download_target(remote: str, local: str | os.PathLike[str] | None) -> Path:
    """Where a download lands: ``local``, or inside it when it is a folder."""
    name = local_name(remote)
    if local is None:
        return Path(name)
    path = Path(local)
    return path / name if path.is_dir() else path


def ready_or_done(reply: Reply | Chunk, plan: PutPlan, local: Path) -> Transfer | None:
    """After file.ready: None, with ``plan.offset`` set; the result when the server already
    holds this content and wants no data."""
    if not isinstance(reply, Reply):
        raise ProtocolError("the server sent a body before its file.ready")
    if reply.op != "file.ready":
        return Transfer(plan.remote, local, plan.total, server_sha(reply), 0, 0, True)
    offset = reply.header.get("offset")
    if offset.__class__ is not int or not 0 <= offset <= plan.total:
        raise ProtocolError(f"the server answered file.put with a bad offset {offset!r}")
    plan.offset = offset
    return None


def data_header(rid: int, size: int) -> bytes:
    return bytes(encode_header({"op": "file.data", "target": rid}, size))


def end_frame(rid: int, sha: str) -> bytes:
    return encode_frame({"op": "file.end", "target": rid, "sha256": sha})


def sent_result(plan: PutPlan, local: Path, final: Reply | Chunk) -> Transfer:
    if not isinstance(final, Reply):
        raise ProtocolError("the server sent a body instead of the upload's result")
    sha = server_sha(final)
    return Transfer(plan.remote, local, plan.total, sha, plan.total - plan.offset, plan.offset)


def got_reply(remote: str, part: LocalPartial, item: Reply, total: int) -> tuple[int, str]:
    """(total, sha256) after one of a download's replies (file.data, then file.end)."""
    if item.op != "file.data":
        return total, server_sha(item)
    size = item.header.get("total")
    if size.__class__ is not int or item.header.get("offset") != part.offset:
        raise ProtocolError(f"{remote}: the server's file.data does not match the request")
    return size, ""


def verified(remote: str, part: LocalPartial, total: int, sha: str) -> Transfer:
    mine = part.finish_writes()
    if part.written != total or mine != sha:
        raise FileHashMismatch(f"{remote}: the bytes received do not match the server's sha256")
    return Transfer(remote, part.target, total, sha, total - part.offset, part.offset)


def report(progress: Progress | None, done: int, total: int) -> None:
    if progress is not None:
        progress(done, total)


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
