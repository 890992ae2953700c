"""Files (PROTOCOL.md section 7) on both clients: ``FilesMixin`` and ``AsyncFilesMixin``.

``put`` sends a file with ``sendfile`` (zero copy where the socket allows) while a
thread hashes it, so the sha256 is ready when the last byte has left; the server resumes
an interrupted upload by itself. ``get`` writes into a local partial, verifies, then
renames. The request shapes, reply checks and retry rules live in ``filework``; these
methods are the thin shells each client needs.
"""

from __future__ import annotations

import asyncio
import builtins
import collections
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from ..protocol.errors import FileHashMismatch, ProtocolError
from . import files_async
from .files_sync import WINDOW, Download, SyncHost, Upload, asked, fetch, land_oldest, step
from .filework import (
    Entry,
    FileInfo,
    GetPlan,
    Listing,
    Progress,
    PutOptions,
    PutPlan,
    Transfer,
    download_target,
)
from .localfile import file_sha256

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["AsyncFilesMixin", "FilesMixin"]


class FilesMixin:
    """put, get, list, stat and delete for the blocking ``Client``."""

    def put(
        self: SyncHost,
        local: str | os.PathLike[str],
        remote: str,
        **options: Unpack[PutOptions],
    ) -> Transfer:
        """Upload ``local`` to ``remote``; an interrupted upload of it resumes.

        Options as ``PutOptions`` says. A result's ``sent`` says how many bytes actually
        crossed the network.
        """
        upload = Upload(self, local, remote, options.get("overwrite", False), options.get("sha256"))
        try:
            upload.ask()
            return upload.run(options.get("progress"))
        finally:
            upload.close()

    def put_many(
        self: SyncHost,
        pairs: Iterable[tuple[str | os.PathLike[str], str]],
        *,
        overwrite: bool = False,
        sha256: bool | None = None,
        window: int = WINDOW,
    ) -> Iterator[Transfer | ProtocolError]:
        """Upload many (small) files with up to ``window`` in flight, so they share their
        round trips; yields each result, or the error that ended it, in order."""
        flights: collections.deque[Upload] = collections.deque()
        try:
            for local, remote in pairs:
                upload = Upload(self, local, remote, overwrite, sha256)
                flights.append(upload)
                step(upload, upload.ask)
                if len(flights) >= window:
                    yield land_oldest(flights)
            while flights:
                yield land_oldest(flights)
        finally:
            for upload in flights:
                upload.close()

    def get(
        self: SyncHost,
        remote: str,
        local: str | os.PathLike[str] | None = None,
        *,
        progress: Progress | None = None,
    ) -> Transfer:
        """Download ``remote`` to ``local`` (a file, or a folder to put it in); an
        interrupted download of it resumes from its partial file."""
        download = Download(self, remote, local)
        download.ask()
        return download.run(progress)

    def get_many(
        self: SyncHost,
        pairs: Iterable[tuple[str, str | os.PathLike[str]]],
        *,
        window: int = WINDOW,
    ) -> Iterator[Transfer | ProtocolError]:
        """Download many (small) files with up to ``window`` asked ahead; yields each
        result, or the error that ended it, in order. Replies that arrive early wait in
        memory: leave big files to ``get``."""
        flights: collections.deque[Download | ProtocolError] = collections.deque()
        try:
            for remote, local in pairs:
                flights.append(asked(self, remote, local))
                if len(flights) >= window:
                    yield fetch(flights.popleft())
            while flights:
                yield fetch(flights.popleft())
        finally:
            for download in flights:
                if isinstance(download, Download):
                    download.plan.part.abort(keep=True)

    def list(self: SyncHost, path: str = "") -> builtins.list[Entry]:
        """The entries of a remote directory (every page of it), sorted by name."""
        listing = Listing(path)
        while not listing.done:
            listing.add(self.request("file.list", **listing.fields()))
        return listing.entries

    def stat(self: SyncHost, path: str, *, hash: bool = False) -> FileInfo:
        """Type, size and mtime of a remote path; with ``hash`` also a file's sha256."""
        return FileInfo.from_reply(self.request("file.stat", path=path, hash=hash))

    def delete(self: SyncHost, path: str) -> None:
        """Delete a remote file, or a directory that is empty."""
        self.request("file.delete", path=path)


class AsyncFilesMixin:
    """put, get, list, stat and delete for ``AsyncClient`` (the same shapes, awaited)."""

    async def put(
        self: files_async.AsyncHost,
        local: str | os.PathLike[str],
        remote: str,
        **options: Unpack[PutOptions],
    ) -> Transfer:
        """Upload ``local`` to ``remote``; see ``Client.put``."""
        sha256, progress = options.get("sha256"), options.get("progress")
        with open(local, "rb") as src:
            size = os.fstat(src.fileno()).st_size
            plan = PutPlan(remote, size, options.get("overwrite", False))
            want = sha256 is True
            plan.sha256 = None if want or not sha256 else str(sha256)
            while True:
                if want:
                    plan.sha256 = await asyncio.to_thread(file_sha256, src)
                try:
                    return await files_async.put_once(self, src, Path(local), plan, progress)
                except ProtocolError as exc:
                    want = plan.retry(exc)

    async def get(
        self: files_async.AsyncHost,
        remote: str,
        local: str | os.PathLike[str] | None = None,
        *,
        progress: Progress | None = None,
    ) -> Transfer:
        """Download ``remote`` to ``local``; see ``Client.get``."""
        with GetPlan(download_target(remote, local)) as plan:
            while True:
                try:
                    result = await files_async.get_once(self, remote, plan.part, progress)
                    return await asyncio.to_thread(plan.done, result)
                except FileHashMismatch as exc:
                    plan.retry(exc)

    async def list(self: files_async.AsyncHost, path: str = "") -> builtins.list[Entry]:
        listing = Listing(path)
        while not listing.done:
            listing.add(await self.request("file.list", **listing.fields()))
        return listing.entries

    async def stat(self: files_async.AsyncHost, path: str, *, hash: bool = False) -> FileInfo:
        return FileInfo.from_reply(await self.request("file.stat", path=path, hash=hash))

    async def delete(self: files_async.AsyncHost, path: str) -> None:
        await self.request("file.delete", path=path)
