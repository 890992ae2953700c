"""Files (PROTOCOL.md section 7) on both clients: ``FilesMixin`` and ``AsyncFilesMixin``.

``put`` sends a file zero-copy (``socket.sendfile``) while a thread hashes it, so the
sha256 is ready when the last byte has left; the server resumes an interrupted upload
by itself. ``get`` writes into a local partial, verifies, then renames. Both retry once
where the protocol says a fresh start helps: an upload refused with ``file.exists`` is
asked again with its sha256 (the same content is then accepted without a transfer), and
a resumed transfer whose whole-file hash is wrong starts again from byte 0.
"""

from __future__ import annotations

import asyncio
import builtins
import io
import os
import socket
import threading
from collections.abc import AsyncIterator, Iterable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ..protocol.errors import FileHashMismatch, ProtocolError
from ..protocol.frames import encode_frame, encode_header
from .common import Reply
from .errors import ConnectionClosed
from .filework import (
    SLICE,
    Entry,
    FileInfo,
    LocalPartial,
    Progress,
    PutPlan,
    Transfer,
    entries_of,
    file_sha256,
    local_name,
    server_sha,
)

if TYPE_CHECKING:
    from .aio import Chunk

__all__ = ["AsyncFilesMixin", "FilesMixin"]

READY = ("file.ready",)
DATA = ("file.data",)


def _ready_offset(reply: Reply, total: int) -> int:
    offset = reply.header.get("offset")
    if offset.__class__ is not int or not 0 <= offset <= total:
        raise ProtocolError(f"the server answered file.put with a bad offset {offset!r}")
    return int(offset)


def _target(remote: str, local: str | os.PathLike[str] | None) -> Path:
    """Where a download lands: ``local``, or inside it when it is a folder."""
    name = local_name(remote)
    if local is None:
        return Path(name)
    path = Path(local)
    return path / name if path.is_dir() else path


def _hash_in_thread(path: str, ino: int) -> Future[str]:
    """Hash a local file on a thread, through its own open file (sendfile moves ours)."""
    result: Future[str] = Future()

    def run() -> None:
        try:
            with open(path, "rb") as file:
                if os.fstat(file.fileno()).st_ino != ino:
                    raise OSError(f"{path} was replaced while it was being sent")
                result.set_result(file_sha256(file))
        except BaseException as exc:
            result.set_exception(exc)

    threading.Thread(target=run, name="sockhub-put-hash", daemon=True).start()
    return result


def _progress(progress: Progress | None, done: int, total: int) -> None:
    if progress is not None:
        progress(done, total)


class _SyncHost(Protocol):
    _sock: socket.socket | None

    def _write(self, data: bytes) -> None: ...

    def _fail(self, exc: BaseException) -> None: ...

    def request(
        self, op: str, body: bytes = b"", *, timeout: float | None = None, **fields: Any
    ) -> Reply: ...

    def start_stream(self, op: str, body: bytes = b"", **fields: Any) -> int: ...

    def follow(self, rid: int, *, partial: Iterable[str]) -> Iterator[Reply | Chunk]: ...


class FilesMixin:
    """put, get, list, stat and delete for the blocking ``Client``."""

    def put(
        self: _SyncHost,
        local: str | os.PathLike[str],
        remote: str,
        *,
        overwrite: bool = False,
        sha256: str | bool | None = None,
        progress: Progress | None = None,
    ) -> Transfer:
        """Upload ``local`` to ``remote``; an interrupted upload of it resumes.

        ``sha256=True`` hashes the file first so the server skips it when it already
        holds the same content (even with ``overwrite``); a hex string is trusted as is.
        """
        with open(local, "rb") as src:
            plan = PutPlan(remote, os.fstat(src.fileno()).st_size, overwrite)
            plan.sha256 = file_sha256(src) if sha256 is True else (sha256 or None)
            while True:
                try:
                    return _put_once(self, src, Path(local), plan, progress)
                except ProtocolError as exc:
                    retry = plan.retry(exc)
                    if not retry:
                        raise
                    if retry == "hash":
                        plan.sha256 = file_sha256(src)

    def get(
        self: _SyncHost,
        remote: str,
        local: str | os.PathLike[str] | None = None,
        *,
        progress: Progress | None = None,
    ) -> Transfer:
        """Download ``remote`` to ``local`` (a file, or a folder to put it in); an
        interrupted download of it resumes from its partial file."""
        target = _target(remote, local)
        part = LocalPartial(target)
        keep = True
        try:
            try:
                result = _get_once(self, remote, part, progress)
            except FileHashMismatch:
                if part.offset == 0:
                    raise
                part.restart()
                result = _get_once(self, remote, part, progress)
            part.publish()
            return result
        except FileHashMismatch:
            keep = False
            raise
        finally:
            if not part.file.closed:
                part.abort(keep)

    def list(self: _SyncHost, path: str = "") -> builtins.list[Entry]:
        """The entries of a remote directory (every page of it), sorted by name."""
        out: builtins.list[Entry] = []
        after: str | None = ""
        while after is not None:
            fields: dict[str, Any] = {"after": after} if after else {}
            entries, after = entries_of(self.request("file.list", path=path, **fields))
            out += entries
        return out

    def stat(self: _SyncHost, path: str, *, hash: bool = False) -> FileInfo:
        return FileInfo.from_reply(self.request("file.stat", path=path, hash=hash))

    def delete(self: _SyncHost, path: str) -> None:
        self.request("file.delete", path=path)


def _put_once(
    client: _SyncHost, src: io.BufferedReader, local: Path, plan: PutPlan, progress: Progress | None
) -> Transfer:
    rid = client.start_stream("file.put", **plan.fields())
    items = client.follow(rid, partial=READY)
    reply = next(items)
    total = plan.total
    if not isinstance(reply, Reply):
        raise ProtocolError("the server sent a body before its file.ready")
    if reply.op != "file.ready":  # ok at once: it already holds this content
        return Transfer(plan.remote, local, total, server_sha(reply), 0, 0, True)
    offset = plan.offset = _ready_offset(reply, total)
    hashing = _hash_in_thread(str(local), os.fstat(src.fileno()).st_ino)
    client._write(bytes(encode_header({"op": "file.data", "target": rid, "size": total - offset})))
    _sendfile(client, src, offset, total, progress)
    mine = hashing.result()
    client._write(encode_frame({"op": "file.end", "target": rid, "sha256": mine}))
    final = next(items)
    assert isinstance(final, Reply)
    return Transfer(plan.remote, local, total, server_sha(final), total - offset, offset)


def _sendfile(
    client: _SyncHost, src: io.BufferedReader, offset: int, total: int, progress: Progress | None
) -> None:
    sock = client._sock
    if sock is None:
        raise ConnectionClosed("the connection is closed")
    pos = offset
    try:
        while pos < total:
            n = min(SLICE, total - pos)
            sent = sock.sendfile(src, pos, n)
            if sent != n:
                raise OSError(f"{src.name} ended {total - pos - sent} bytes early")
            pos += n
            _progress(progress, pos, total)
    except OSError as exc:
        client._fail(ConnectionClosed(f"sending the file failed: {exc}"))
        raise ConnectionClosed(f"sending the file failed: {exc}") from exc


def _get_once(
    client: _SyncHost, remote: str, part: LocalPartial, progress: Progress | None
) -> Transfer:
    rid = client.start_stream("file.get", path=remote, offset=part.offset)
    total = 0
    sha = ""
    for item in client.follow(rid, partial=DATA):
        if isinstance(item, Reply):
            if item.op == "file.data":
                total = _data_total(item, part)
            else:
                sha = server_sha(item)
        else:
            part.put(item)
            _progress(progress, part.written, total)
    return _verified(remote, part, total, sha)


def _data_total(reply: Reply, part: LocalPartial) -> int:
    h = reply.header
    total = h.get("total")
    if total.__class__ is not int or h.get("offset") != part.offset:
        raise ProtocolError("the server's file.data does not match the requested offset")
    return int(total)


def _verified(remote: str, part: LocalPartial, total: int, sha: str) -> Transfer:
    mine = part.finish_writes()
    if part.written != total or mine != sha:
        raise FileHashMismatch(f"{remote}: the bytes received do not match the server's sha256")
    return Transfer(remote, part.target, total, sha, total - part.offset, part.offset)


class _AsyncHost(Protocol):
    _transport: asyncio.Transport | None

    def _write(self, data: bytes) -> None: ...

    def request(self, op: str, body: bytes = b"", **fields: Any) -> asyncio.Future[Reply]: ...

    def start_stream(
        self, op: str, body: bytes = b"", *, partial: Iterable[str], **fields: Any
    ) -> int: ...

    def follow(self, rid: int) -> AsyncIterator[Reply | Chunk]: ...

    async def drain(self) -> None: ...


class AsyncFilesMixin:
    """put, get, list, stat and delete for ``AsyncClient``."""

    async def list(self: _AsyncHost, path: str = "") -> builtins.list[Entry]:
        out: builtins.list[Entry] = []
        after: str | None = ""
        while after is not None:
            fields: dict[str, Any] = {"after": after} if after else {}
            entries, after = entries_of(await self.request("file.list", path=path, **fields))
            out += entries
        return out

    async def stat(self: _AsyncHost, path: str, *, hash: bool = False) -> FileInfo:
        return FileInfo.from_reply(await self.request("file.stat", path=path, hash=hash))

    async def delete(self: _AsyncHost, path: str) -> None:
        await self.request("file.delete", path=path)
