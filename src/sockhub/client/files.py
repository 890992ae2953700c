"""Files (PROTOCOL.md section 7) on both clients: ``FilesMixin`` and ``AsyncFilesMixin``.

``put`` sends a file with ``sendfile`` (zero copy where the socket allows) while a
thread hashes it, so the sha256 is ready when the last byte has left; the server resumes
an interrupted upload by itself. ``get`` writes into a local partial, verifies, then
renames. The request shapes, reply checks and retry rules live in ``filework`` and
here once; each client method is the thin loop that moves the bytes its own way.
"""

from __future__ import annotations

import asyncio
import builtins
import collections
import functools
import io
import os
import select
import socket
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ..protocol.errors import FileHashMismatch, ProtocolError
from ..protocol.frames import encode_frame, encode_header
from .common import Reply
from .errors import ConnectionClosed
from .filework import (
    INLINE,
    SLICE,
    Entry,
    FileInfo,
    GetPlan,
    Listing,
    LocalPartial,
    Progress,
    PutPlan,
    Transfer,
    file_sha256,
    local_name,
    server_sha,
)

if TYPE_CHECKING:
    from .aio import Chunk

__all__ = ["AsyncFilesMixin", "FilesMixin"]

READY = ("file.ready",)
DATA = ("file.data",)
WINDOW = 32
"""Transfers ``put_many``/``get_many`` keep in flight."""
_COPY = 1 << 20


def _target(remote: str, local: str | os.PathLike[str] | None) -> Path:
    """Where a download lands: ``local``, or inside it when it is a folder."""
    name = local_name(remote)
    if local is None:
        return Path(name)
    path = Path(local)
    return path / name if path.is_dir() else path


def _hashing(path: Path, src: io.BufferedReader, size: int) -> Future[str]:
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


def _ready(reply: Reply | Chunk, plan: PutPlan, local: Path) -> Transfer | None:
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


def _data_header(rid: int, size: int) -> bytes:
    return bytes(encode_header({"op": "file.data", "target": rid}, size))


def _end_frame(rid: int, sha: str) -> bytes:
    return encode_frame({"op": "file.end", "target": rid, "sha256": sha})


def _sent(plan: PutPlan, local: Path, final: Reply | Chunk) -> Transfer:
    if not isinstance(final, Reply):
        raise ProtocolError("the server sent a body instead of the upload's result")
    sha = server_sha(final)
    return Transfer(plan.remote, local, plan.total, sha, plan.total - plan.offset, plan.offset)


def _got(remote: str, part: LocalPartial, item: Reply, total: int) -> tuple[int, str]:
    """(total, sha256) after one of a download's replies (file.data, then file.end)."""
    if item.op != "file.data":
        return total, server_sha(item)
    size = item.header.get("total")
    if size.__class__ is not int or item.header.get("offset") != part.offset:
        raise ProtocolError(f"{remote}: the server's file.data does not match the request")
    return size, ""


def _verified(remote: str, part: LocalPartial, total: int, sha: str) -> Transfer:
    mine = part.finish_writes()
    if part.written != total or mine != sha:
        raise FileHashMismatch(f"{remote}: the bytes received do not match the server's sha256")
    return Transfer(remote, part.target, total, sha, total - part.offset, part.offset)


def _progress(progress: Progress | None, done: int, total: int) -> None:
    if progress is not None:
        progress(done, total)


# the blocking client ---------------------------------------------------------------


class _SyncHost(Protocol):
    _sock: socket.socket | None
    _held: dict[int, collections.deque[Reply | Chunk]]

    def _pump(self, deadline: float | None) -> None: ...

    def _write(self, data: bytes) -> None: ...

    def _fail(self, exc: BaseException) -> None: ...

    def request(
        self, op: str, body: bytes = b"", *, timeout: float | None = None, **fields: Any
    ) -> Reply: ...

    def start_stream(self, op: str, body: bytes = b"", **fields: Any) -> int: ...

    def follow(self, rid: int, *, partial: Iterable[str]) -> Iterator[Reply | Chunk]: ...


class _Upload:
    """One upload on the blocking client, in the steps a pipeline interleaves:
    ``ask`` (file.put), ``send`` (after file.ready: the body and file.end), ``land``."""

    def __init__(
        self,
        client: _SyncHost,
        local: str | os.PathLike[str],
        remote: str,
        overwrite: bool,
        sha256: str | bool | None,
    ) -> None:
        self.client = client
        self.local = Path(local)
        self.src = open(local, "rb")  # noqa: SIM115 - closed by close()
        self.plan = PutPlan(remote, os.fstat(self.src.fileno()).st_size, overwrite)
        self.plan.sha256 = file_sha256(self.src) if sha256 is True else (sha256 or None)
        self.rid = 0
        self.items: Iterator[Reply | Chunk] = iter(())
        self.result: Transfer | None = None
        self.error: ProtocolError | None = None
        self.sent = False

    def ask(self) -> None:
        self.rid = self.client.start_stream("file.put", **self.plan.fields())
        self.items = self.client.follow(self.rid, partial=READY)
        self.sent = False
        self.result = None

    def send(self, progress: Progress | None) -> None:
        """Wait for file.ready, then send the body (zero copy) and file.end."""
        self.sent = True
        self.result = _ready(next(self.items), self.plan, self.local)
        if self.result is not None:
            return
        plan, client = self.plan, self.client
        hashing = _hashing(self.local, self.src, plan.total)
        client._write(_data_header(self.rid, plan.total - plan.offset))
        sock = client._sock
        if sock is None:
            raise ConnectionClosed("the connection is closed")
        pos = plan.offset
        try:
            while pos < plan.total:
                n = min(SLICE, plan.total - pos)
                if sock.sendfile(self.src, pos, n) != n:
                    raise OSError(f"{self.local} shrank while it was being sent")
                pos += n
                _progress(progress, pos, plan.total)
        except OSError as exc:
            client._fail(ConnectionClosed(f"sending {self.local} failed: {exc}"))
            raise ConnectionClosed(f"sending {self.local} failed: {exc}") from exc
        client._write(_end_frame(self.rid, hashing.result()))

    def run(self, progress: Progress | None) -> Transfer:
        """Finish this upload, asking again when the protocol says that helps."""
        while True:
            try:
                if self.error is not None:
                    error, self.error = self.error, None
                    raise error
                if not self.sent:
                    self.send(progress)
                return self.result or _sent(self.plan, self.local, next(self.items))
            except ProtocolError as exc:
                if self.plan.retry(exc):
                    self.plan.sha256 = file_sha256(self.src)
                self.ask()

    def close(self) -> None:
        self.src.close()


class _Download:
    """One download on the blocking client: ``ask`` (file.get), then ``run``."""

    def __init__(
        self, client: _SyncHost, remote: str, local: str | os.PathLike[str] | None
    ) -> None:
        self.client = client
        self.remote = remote
        self.plan = GetPlan(_target(remote, local))
        self.rid = 0

    def ask(self) -> None:
        part = self.plan.part
        self.rid = self.client.start_stream("file.get", path=self.remote, offset=part.offset)

    def _land(self, progress: Progress | None) -> Transfer:
        part = self.plan.part
        total, sha = 0, ""
        for item in self.client.follow(self.rid, partial=DATA):
            if isinstance(item, Reply):
                total, sha = _got(self.remote, part, item, total)
            else:
                part.put(item)
                _progress(progress, part.written, total)
        return _verified(self.remote, part, total, sha)

    def run(self, progress: Progress | None) -> Transfer:
        """Land the asked download; again from byte 0 after a resume that hashed wrong."""
        with self.plan:
            while True:
                try:
                    return self.plan.done(self._land(progress))
                except FileHashMismatch as exc:
                    self.plan.retry(exc)
                    self.ask()


def _outcome(run: Callable[[], Transfer]) -> Transfer | ProtocolError:
    """A transfer's result, or the non-fatal protocol error that ended it."""
    try:
        return run()
    except ProtocolError as exc:
        if exc.fatal:
            raise
        return exc


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
        A result's ``sent`` says how many bytes actually crossed the network.
        """
        upload = _Upload(self, local, remote, overwrite, sha256)
        try:
            upload.ask()
            return upload.run(progress)
        finally:
            upload.close()

    def put_many(
        self: _SyncHost,
        pairs: Iterable[tuple[str | os.PathLike[str], str]],
        *,
        overwrite: bool = False,
        sha256: bool | None = None,
        window: int = WINDOW,
    ) -> Iterator[Transfer | ProtocolError]:
        """Upload many (small) files with up to ``window`` in flight, so they share their
        round trips; yields each result, or the error that ended it, in order."""
        flights: collections.deque[_Upload] = collections.deque()
        try:
            for local, remote in pairs:
                upload = _Upload(self, local, remote, overwrite, sha256)
                flights.append(upload)
                _start(upload, upload.ask)
                if len(flights) >= window:
                    yield _land_oldest(flights)
            while flights:
                yield _land_oldest(flights)
        finally:
            for upload in flights:
                upload.close()

    def get(
        self: _SyncHost,
        remote: str,
        local: str | os.PathLike[str] | None = None,
        *,
        progress: Progress | None = None,
    ) -> Transfer:
        """Download ``remote`` to ``local`` (a file, or a folder to put it in); an
        interrupted download of it resumes from its partial file."""
        download = _Download(self, remote, local)
        download.ask()
        return download.run(progress)

    def get_many(
        self: _SyncHost,
        pairs: Iterable[tuple[str, str | os.PathLike[str]]],
        *,
        window: int = WINDOW,
    ) -> Iterator[Transfer | ProtocolError]:
        """Download many (small) files with up to ``window`` asked ahead; yields each
        result, or the error that ended it, in order. Replies that arrive early wait in
        memory: leave big files to ``get``."""
        flights: collections.deque[_Download | ProtocolError] = collections.deque()
        try:
            for remote, local in pairs:
                flights.append(_asked(self, remote, local))
                if len(flights) >= window:
                    yield _fetch(flights.popleft())
            while flights:
                yield _fetch(flights.popleft())
        finally:
            for download in flights:
                if isinstance(download, _Download):
                    download.plan.part.abort(keep=True)

    def list(self: _SyncHost, path: str = "") -> builtins.list[Entry]:
        """The entries of a remote directory (every page of it), sorted by name."""
        listing = Listing(path)
        while not listing.done:
            listing.add(self.request("file.list", **listing.fields()))
        return listing.entries

    def stat(self: _SyncHost, path: str, *, hash: bool = False) -> FileInfo:
        """Type, size and mtime of a remote path; with ``hash`` also a file's sha256."""
        return FileInfo.from_reply(self.request("file.stat", path=path, hash=hash))

    def delete(self: _SyncHost, path: str) -> None:
        """Delete a remote file, or a directory that is empty."""
        self.request("file.delete", path=path)


def _asked(
    client: _SyncHost, remote: str, local: str | os.PathLike[str]
) -> _Download | ProtocolError:
    try:
        download = _Download(client, remote, local)
    except ProtocolError as exc:
        if exc.fatal:
            raise
        return exc
    download.ask()
    return download


def _fetch(download: _Download | ProtocolError) -> Transfer | ProtocolError:
    if isinstance(download, ProtocolError):
        return download
    return _outcome(functools.partial(download.run, None))


def _start(upload: _Upload, step: Callable[[], None]) -> None:
    """Take one step of a pipelined upload; a non-fatal error waits for its turn."""
    try:
        step()
    except ProtocolError as exc:
        if exc.fatal:
            raise
        upload.error = exc
        upload.sent = True


def _land_oldest(flights: collections.deque[_Upload]) -> Transfer | ProtocolError:
    """Send the bodies of the uploads whose file.ready has come, then land the oldest:
    the server works on the others meanwhile, and nothing waits on the newest."""
    client = flights[0].client
    sock = client._sock
    while sock is not None and select.select([sock], [], [], 0)[0]:
        client._pump(None)  # take in what has arrived, without waiting
    for upload in flights:
        if not upload.sent and (upload is flights[0] or client._held.get(upload.rid)):
            _start(upload, functools.partial(upload.send, None))
    upload = flights.popleft()
    try:
        return _outcome(functools.partial(upload.run, None))
    finally:
        upload.close()


# the asyncio client -------------------------------------------------------------------


class _AsyncHost(Protocol):
    _transport: asyncio.Transport | None
    _loop: asyncio.AbstractEventLoop
    _held: bytearray | None

    def _write(self, data: bytes) -> None: ...

    def _flush(self) -> None: ...

    def request(self, op: str, body: bytes = b"", **fields: Any) -> asyncio.Future[Reply]: ...

    def start_stream(
        self, op: str, body: bytes = b"", *, partial: Iterable[str], **fields: Any
    ) -> int: ...

    def follow(self, rid: int) -> AsyncIterator[Reply | Chunk]: ...

    async def drain(self) -> None: ...


class AsyncFilesMixin:
    """put, get, list, stat and delete for ``AsyncClient`` (the same shapes, awaited)."""

    async def put(
        self: _AsyncHost,
        local: str | os.PathLike[str],
        remote: str,
        *,
        overwrite: bool = False,
        sha256: str | bool | None = None,
        progress: Progress | None = None,
    ) -> Transfer:
        """Upload ``local`` to ``remote``; see ``Client.put``."""
        with open(local, "rb") as src:
            plan = PutPlan(remote, os.fstat(src.fileno()).st_size, overwrite)
            want = sha256 is True
            plan.sha256 = None if want or not sha256 else str(sha256)
            while True:
                if want:
                    plan.sha256 = await asyncio.to_thread(file_sha256, src)
                try:
                    return await _aput_once(self, src, Path(local), plan, progress)
                except ProtocolError as exc:
                    want = plan.retry(exc)

    async def get(
        self: _AsyncHost,
        remote: str,
        local: str | os.PathLike[str] | None = None,
        *,
        progress: Progress | None = None,
    ) -> Transfer:
        """Download ``remote`` to ``local``; see ``Client.get``."""
        with GetPlan(_target(remote, local)) as plan:
            while True:
                try:
                    result = await _aget_once(self, remote, plan.part, progress)
                    return await asyncio.to_thread(plan.done, result)
                except FileHashMismatch as exc:
                    plan.retry(exc)

    async def list(self: _AsyncHost, path: str = "") -> builtins.list[Entry]:
        listing = Listing(path)
        while not listing.done:
            listing.add(await self.request("file.list", **listing.fields()))
        return listing.entries

    async def stat(self: _AsyncHost, path: str, *, hash: bool = False) -> FileInfo:
        return FileInfo.from_reply(await self.request("file.stat", path=path, hash=hash))

    async def delete(self: _AsyncHost, path: str) -> None:
        await self.request("file.delete", path=path)


async def _aput_once(
    client: _AsyncHost,
    src: io.BufferedReader,
    local: Path,
    plan: PutPlan,
    progress: Progress | None,
) -> Transfer:
    rid = client.start_stream("file.put", partial=READY, **plan.fields())
    items = client.follow(rid)
    skipped = _ready(await anext(items), plan, local)
    if skipped is not None:
        return skipped
    hashing = asyncio.wrap_future(_hashing(local, src, plan.total))
    await _send_body(client, rid, src, plan, progress)
    client._write(_end_frame(rid, await hashing))
    return _sent(plan, local, await anext(items))


async def _send_body(
    client: _AsyncHost, rid: int, src: io.BufferedReader, plan: PutPlan, progress: Progress | None
) -> None:
    """The file.data frame; other frames wait in ``_held`` so none lands inside the body.

    ``loop.sendfile`` sends without a copy where the loop can (asyncio's own, on plain
    sockets); uvloop and TLS cannot, so the bytes are read in a thread and written.
    """
    transport = client._transport
    if transport is None or transport.is_closing():
        raise ConnectionClosed("the connection is closed")
    client._flush()
    client._held = bytearray()
    try:
        transport.write(_data_header(rid, plan.total - plan.offset))
        pos, zero_copy = plan.offset, True
        while pos < plan.total:
            n = min(SLICE, plan.total - pos)
            if zero_copy:
                try:
                    await client._loop.sendfile(transport, src, pos, n, fallback=False)
                except (NotImplementedError, RuntimeError):
                    zero_copy = False
            if not zero_copy:
                await _copy(client, transport, src, pos, n)
            pos += n
            _progress(progress, pos, plan.total)
    finally:
        held, client._held = client._held, None
        if held:
            client._write(bytes(held))


async def _copy(
    client: _AsyncHost, transport: asyncio.Transport, src: io.BufferedReader, pos: int, n: int
) -> None:
    end = pos + n
    while pos < end:
        chunk = await asyncio.to_thread(os.pread, src.fileno(), min(_COPY, end - pos), pos)
        if not chunk:
            raise ConnectionClosed(f"{src.name} shrank while it was being sent")
        transport.write(chunk)
        pos += len(chunk)
        await client.drain()


async def _aget_once(
    client: _AsyncHost, remote: str, part: LocalPartial, progress: Progress | None
) -> Transfer:
    rid = client.start_stream("file.get", partial=DATA, path=remote, offset=part.offset)
    total, sha = 0, ""
    async for item in client.follow(rid):
        if isinstance(item, Reply):
            total, sha = _got(remote, part, item, total)
        else:
            if not part.put_nowait(item):
                await asyncio.to_thread(part.put, item)
            _progress(progress, part.written, total)
    return await asyncio.to_thread(_verified, remote, part, total, sha)
