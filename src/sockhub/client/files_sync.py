"""Files on the blocking client: uploads and downloads in steps a pipeline interleaves.

One transfer is ``ask`` (the request) then its reply handling; ``put_many`` and
``get_many`` keep several asked ahead, so small files share round trips. An upload's
body goes with ``socket.sendfile`` (zero copy on plain sockets).
"""

from __future__ import annotations

import collections
import functools
import io
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ..protocol.client_events import Reply
from ..protocol.errors import FileHashMismatch, ProtocolError
from .errors import LocalFileChanged
from .filework import (
    DATA,
    READY,
    GetPlan,
    Progress,
    PutPlan,
    Transfer,
    data_header,
    download_target,
    end_frame,
    got_reply,
    ready_or_done,
    report,
    sent_result,
    verified,
)
from .localfile import SLICE, file_sha256, hashing

if TYPE_CHECKING:
    from ..protocol.client_events import Chunk

__all__ = ["WINDOW", "Download", "SyncHost", "Upload", "asked", "fetch", "land_oldest", "step"]

WINDOW = 32
"""Transfers ``put_many``/``get_many`` keep in flight."""


class SyncHost(Protocol):
    """What the blocking ``Client`` offers the files code: public methods only."""

    def send_raw(self, data: bytes) -> None: ...

    def sendfile(self, src: io.BufferedReader, offset: int, count: int) -> int: ...

    def poll(self) -> None: ...

    def has_reply(self, rid: int) -> bool: ...

    def request(self, op: str, body: bytes = b"", **fields: Any) -> Reply: ...

    def start_stream(
        self, op: str, body: bytes = b"", *, partial: Iterable[str], **fields: Any
    ) -> int: ...

    def follow(self, rid: int) -> Iterator[Reply | Chunk]: ...


class Upload:
    """One upload on the blocking client, in the steps a pipeline interleaves:
    ``ask`` (file.put), ``send`` (after file.ready: the body and file.end), ``land``."""

    def __init__(
        self,
        client: SyncHost,
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
        self.rid = self.client.start_stream("file.put", partial=READY, **self.plan.fields())
        self.items = self.client.follow(self.rid)
        self.sent = False
        self.result = None

    def send(self, progress: Progress | None) -> None:
        """Wait for file.ready, then send the body (zero copy) and file.end."""
        self.sent = True
        self.result = ready_or_done(next(self.items), self.plan, self.local)
        if self.result is not None:
            return
        plan, client = self.plan, self.client
        digest = hashing(self.local, self.src, plan.total)
        client.send_raw(data_header(self.rid, plan.total - plan.offset))
        pos = plan.offset
        while pos < plan.total:
            n = min(SLICE, plan.total - pos)
            if client.sendfile(self.src, pos, n) != n:
                raise LocalFileChanged(f"{self.local} shrank while it was being sent")
            pos += n
            report(progress, pos, plan.total)
        client.send_raw(end_frame(self.rid, digest.result()))

    def run(self, progress: Progress | None) -> Transfer:
        """Finish this upload, asking again when the protocol says that helps."""
        while True:
            try:
                if self.error is not None:
                    error, self.error = self.error, None
                    raise error
                if not self.sent:
                    self.send(progress)
                return self.result or sent_result(self.plan, self.local, next(self.items))
            except ProtocolError as exc:
                if self.plan.retry(exc):
                    self.plan.sha256 = file_sha256(self.src)
                self.ask()

    def close(self) -> None:
        self.src.close()


class Download:
    """One download on the blocking client: ``ask`` (file.get), then ``run``."""

    def __init__(self, client: SyncHost, remote: str, local: str | os.PathLike[str] | None) -> None:
        self.client = client
        self.remote = remote
        self.plan = GetPlan(download_target(remote, local))
        self.rid = 0

    def ask(self) -> None:
        part = self.plan.part
        self.rid = self.client.start_stream(
            "file.get", partial=DATA, path=self.remote, offset=part.offset
        )

    def _land(self, progress: Progress | None) -> Transfer:
        part = self.plan.part
        total, sha = 0, ""
        for item in self.client.follow(self.rid):
            if isinstance(item, Reply):
                total, sha = got_reply(self.remote, part, item, total)
            else:
                part.put(item)
                report(progress, part.written, total)
        return verified(self.remote, part, total, sha)

    def run(self, progress: Progress | None) -> Transfer:
        """Land the asked download; again from byte 0 after a resume that hashed wrong."""
        with self.plan:
            while True:
                try:
                    return self.plan.done(self._land(progress))
                except FileHashMismatch as exc:
                    self.plan.retry(exc)
                    self.ask()


def outcome(run: Callable[[], Transfer]) -> Transfer | ProtocolError:
    """A transfer's result, or the non-fatal protocol error that ended it."""
    try:
        return run()
    except ProtocolError as exc:
        if exc.fatal:
            raise
        return exc


def asked(client: SyncHost, remote: str, local: str | os.PathLike[str]) -> Download | ProtocolError:
    try:
        download = Download(client, remote, local)
    except ProtocolError as exc:
        if exc.fatal:
            raise
        return exc
    download.ask()
    return download


def fetch(download: Download | ProtocolError) -> Transfer | ProtocolError:
    if isinstance(download, ProtocolError):
        return download
    return outcome(functools.partial(download.run, None))


def step(upload: Upload, step: Callable[[], None]) -> None:
    """Take one step of a pipelined upload; a non-fatal error waits for its turn."""
    try:
        step()
    except ProtocolError as exc:
        if exc.fatal:
            raise
        upload.error = exc
        upload.sent = True


def land_oldest(flights: collections.deque[Upload]) -> Transfer | ProtocolError:
    """Send the bodies of the uploads whose file.ready has come, then land the oldest:
    the server works on the others meanwhile, and nothing waits on the newest."""
    client = flights[0].client
    client.poll()  # take in what has arrived, without waiting
    for upload in flights:
        if not upload.sent and (upload is flights[0] or client.has_reply(upload.rid)):
            step(upload, functools.partial(upload.send, None))
    upload = flights.popleft()
    try:
        return outcome(functools.partial(upload.run, None))
    finally:
        upload.close()
