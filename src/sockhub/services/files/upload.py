"""``file.put``, ``file.data`` and ``file.end`` (PROTOCOL.md section 7, upload).

One upload is one ``file.put`` request that stays in flight until its final reply:
it answers ``file.ready`` with the offset its partial already holds, its ``file.data``
body is streamed into a ``Spool`` (written and hashed off the loop), and ``file.end``
brings the sha256 the client computed. Only when the two hashes agree is the partial
renamed over ``path``, so a reader sees the old file or the new one, never a mix.
After an upload failed, the frames the client had already sent for it are dropped.
On a WebSocket session ``file.ready`` also carries a one-time token: the body may come
by ``POST /up/<token>`` on the web port instead (``claim``), into the same spool.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ...protocol.errors import (
    BadRequest,
    FileExists,
    FileHashMismatch,
    FileIsDir,
    FileNotFound,
    FileTooLarge,
    Internal,
    LimitBusy,
    LimitIdle,
    ProtocolError,
)
from ...protocol.fields import get_bool, get_id, get_int
from ...protocol.frames import MAX_SIZE
from ...protocol.paths import check_path
from ...protocol.text import escape
from ...server.service import BodySink, Request, Session
from .noreplace import rename_noreplace
from .quota import BLOCK, Owned, Usage, allocated
from .running import Phase, PostedSink, Sink, Upload, cut_text
from .spool import BUFFER, Spool
from .store import Store, fs_errors
from .tree import os_error

__all__ = ["Uploads", "get_sha256"]

log = logging.getLogger("sockhub.files")

MAX_DEAD = 1024
_HEX = frozenset("0123456789abcdef")


def spool_reserve(total: int, high: int) -> int:
    """The most memory an upload of ``total`` bytes can make its spool hold: queued
    bytes up to the high-water mark ``high``, the pooled buffers lent for them, one
    more read."""
    return 2 * min(total, high) + 3 * BUFFER


def get_sha256(header: dict[str, Any], required: bool) -> str | None:
    value = header.get("sha256")
    if value is None and not required:
        return None
    if not isinstance(value, str) or len(value) != 64 or not set(value.lower()) <= _HEX:
        raise BadRequest("field 'sha256' must be 64 hex digits")
    return value.lower()


@dataclass(slots=True)
class _Sessions:
    """A connection's uploads: running ones, and failed ones whose frames may still come."""

    active: dict[int, Upload] = field(default_factory=dict)
    dead: dict[int, int] = field(default_factory=dict)
    pressure: int = 0
    eof: bool = False


def _store_error(path: str, exc: OSError) -> ProtocolError:
    """What a failed write of an upload means to the client (disk full, file too big)."""
    err = os_error(exc, path)
    if isinstance(err, ProtocolError):
        return err
    log.error("writing the upload of %s failed: %s", escape(path), exc)
    return Internal("the server could not store the file; it logged why")


def _cut_off(upload: Upload) -> None:
    upload.fail(BadRequest(cut_text(upload)))


class Uploads:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.busy: dict[str, Upload] = {}
        self.tokens: dict[str, Upload] = {}
        """Uploads whose body may come by POST on the web port, by their one-time token."""
        self.sessions: dict[Session, _Sessions] = {}
        self.cleanups: set[asyncio.Task[None]] = set()

    # file.put -------------------------------------------------------------------------

    async def put(self, req: Request) -> None:
        h = req.header
        segments = check_path(h.get("path"))
        path = "/".join(segments)
        total = get_int(h, "total", lo=0, hi=MAX_SIZE)
        overwrite = get_bool(h, "overwrite", False)
        sha = get_sha256(h, required=False)
        if req.id is None:
            raise BadRequest("file.put needs an id: its replies are tied to it")
        limit = self.store.limits.file_max_size
        if total > limit:
            raise FileTooLarge(f"{total} bytes is over the server's limit of {limit} per file")
        reserve = spool_reserve(total, self.store.limits.file_spool_high)
        if not self.store.spools.take(reserve):
            raise LimitBusy("the server is receiving too many uploads; try again shortly")
        try:
            await self._claim(path)
        except BaseException:
            self.store.spools.give(reserve)
            raise
        upload = Upload(req.session, req.id, path, total)
        upload.reserve = reserve
        self.busy[path] = upload
        try:
            await self._run(req, upload, segments, overwrite, sha)
        finally:
            task = asyncio.get_running_loop().create_task(self._release(upload))
            self.cleanups.add(task)
            task.add_done_callback(self.cleanups.discard)
            await asyncio.shield(task)

    async def _claim(self, path: str) -> None:
        """Wait for an upload of ``path`` whose connection is gone; refuse a live one."""
        while (other := self.busy.get(path)) is not None:
            if not other.session.closed:
                raise LimitBusy(f"{path} is being uploaded by another request; try later")
            await asyncio.shield(other.released)

    async def _run(
        self,
        req: Request,
        upload: Upload,
        segments: tuple[str, ...],
        overwrite: bool,
        sha: str | None,
    ) -> None:
        store = self.store
        path, total = upload.path, upload.total
        replaced, owner, same = await store.run(
            self._inspect, segments, path, total, overwrite, sha
        )
        if same:
            req.reply({"op": "ok", "path": path, "total": total, "sha256": sha, "unchanged": True})
            return
        key = store.partials.key(path, total)
        await store.reserve(key, total, replaced, Owned(req.session.user, owner))
        upload.key = key
        with fs_errors(path):
            partial = await store.run(store.partials.open, path, total, sha)
        state = self._session(req.session)
        spool = Spool(
            partial.fd,
            partial.offset,
            total,
            executor=store.executor,
            loop=store.loop,
            pressure=lambda on: self._pressure(upload, on),
            failed=lambda exc: self._spool_failed(upload, exc),
            high=store.limits.file_spool_high,
        )
        upload.spool = spool
        upload.left = total - partial.offset
        spool.start()
        state.active[upload.rid] = upload
        if state.eof:
            _cut_off(upload)
        ready: dict[str, Any] = {"op": "file.ready", "offset": partial.offset}
        if req.session.kind == "ws" and upload.left:
            upload.token = ready["token"] = secrets.token_urlsafe(32)
            self.tokens[upload.token] = upload
        req.send(ready)
        upload.last = store.loop.time()
        claimed = await upload.ended
        try:
            actual = await spool.finish()
        except OSError as exc:
            upload.discard = True
            raise _store_error(path, exc) from exc
        if claimed != actual:
            upload.discard = True
            raise FileHashMismatch(
                f"{path}: received bytes hash to {actual}, not {claimed}; nothing was stored"
            )
        with fs_errors(path):
            added, replaced, owner = await store.run(
                self._publish, upload, segments, overwrite, actual
            )
        upload.published = True
        store.quota.published(upload.key, added, replaced, Owned(upload.session.user, owner))
        req.reply({"op": "ok", "path": path, "total": total, "sha256": actual})

    def _inspect(
        self, segments: tuple[str, ...], path: str, total: int, overwrite: bool, sha: str | None
    ) -> tuple[Usage, str | None, bool]:
        """(what the entry a put would replace costs, its owner, whether it already is this
        content)."""
        try:
            with fs_errors(path), self.store.tree.locate(segments) as spot:
                if spot.name is None:
                    raise FileIsDir(f"{path} leads to the files root, a directory")
                st = spot.lstat()
                if st is None:
                    return Usage(), None, False
                if stat.S_ISDIR(st.st_mode):
                    raise FileIsDir(f"{path} is a directory")
                if sha is not None and stat.S_ISREG(st.st_mode) and st.st_size == total:
                    fd, now = spot.open_regular()
                    try:
                        if self.store.file_hash(fd, now) == sha:
                            return allocated(st), None, True
                    finally:
                        os.close(fd)
        except FileNotFound:
            return Usage(), None, False  # a folder on the way is missing: the put makes it
        if not overwrite:
            raise FileExists(f"{path} exists; put with overwrite to replace it")
        return allocated(st), self.store.owners.get(st), False

    def _publish(
        self, upload: Upload, segments: tuple[str, ...], overwrite: bool, sha: str
    ) -> tuple[Usage, Usage, str | None]:
        """Rename the checked partial over ``path``: (what it and the folders made for it
        cost now, what the entry it replaced cost, whose that entry was)."""
        assert upload.spool is not None
        store = self.store
        fd = upload.spool.fd
        now = time.time_ns()
        os.utime(fd, ns=(now, now))  # a fine-grained mtime: see hashes.py
        os.fsync(fd)
        part = f"{upload.key}.part"
        with store.tree.locate(segments, make_dirs=True) as spot:
            if spot.name is None:
                raise FileIsDir(f"{upload.path} leads to the files root, a directory")
            old = spot.lstat()
            if old is not None and stat.S_ISDIR(old.st_mode):
                raise FileIsDir(f"{upload.path} is a directory")
            owner = store.owners.get(old) if old is not None else None
            if overwrite:
                os.rename(part, spot.name, src_dir_fd=store.partials.fd, dst_dir_fd=spot.dir_fd)
            else:
                self._link_new(part, spot.dir_fd, spot.name, upload.path)
            st = os.stat(spot.name, dir_fd=spot.dir_fd, follow_symlinks=False)
            added = allocated(st) + Usage(spot.made * BLOCK, spot.made)
        store.hashes.put(st, sha)
        store.owners.set(st, upload.session.user)
        store.partials.forget_meta(upload.key)
        if old is None:
            return added, Usage(), None
        if stat.S_ISREG(old.st_mode):
            store.hashes.forget(old)
        if owner is not None:
            store.owners.set(old, None)
        return added, allocated(old), owner

    def _link_new(self, part: str, dir_fd: int, name: str, path: str) -> None:
        """Put the partial at ``name`` only if nothing is there, atomically (noreplace.py)."""
        try:
            rename_noreplace(part, name, src_dir_fd=self.store.partials.fd, dst_dir_fd=dir_fd)
        except FileExistsError:
            raise FileExists(
                f"{path} appeared while it was uploaded; nothing was replaced"
            ) from None

    async def _release(self, upload: Upload) -> None:
        """Close the partial (its queued bytes reach the disk first), then free the path."""
        store = self.store
        try:
            self.tokens.pop(upload.token, None)
            if upload.detach is not None:
                upload.detach()
            state = self.sessions.get(upload.session)
            if state is not None and state.active.get(upload.rid) is upload:
                del state.active[upload.rid]
            held = 0
            if upload.spool is not None:
                await upload.spool.close()
                held = upload.spool.written
            if upload.key and not upload.published:
                if upload.discard:
                    await store.run(store.partials.remove, upload.key)
                    held = 0
                store.quota.release(upload.key, held)
        finally:
            store.spools.give(upload.reserve)
            if self.busy.get(upload.path) is upload:
                del self.busy[upload.path]
            upload.released.set_result(None)

    # file.data and file.end -------------------------------------------------------------

    def data_body(self, session: Session, header: dict[str, Any]) -> tuple[int, bool] | None:
        """A file.data body is exactly what its upload still needs, streamed to disk."""
        state = self.sessions.get(session)
        target = header.get("target")
        if state is not None and target.__class__ is int:
            upload = state.active.get(target)
            if upload is not None and upload.phase is Phase.READY:
                return (upload.left, True)
            if target in state.dead:
                return (state.dead[target], True)
        return (self.store.limits.max_body, True)

    def data(self, req: Request) -> BodySink | None:
        upload = self._target(req)
        if upload is None:
            return None
        size = req.header.get("size", 0)
        if upload.phase is not Phase.READY:
            self._fail(upload, BadRequest("file.data sent twice for one upload"))
        elif size != upload.left:
            self._fail(
                upload,
                BadRequest(f"file.data must carry exactly {upload.left} bytes, not {size}"),
            )
        else:
            assert upload.spool is not None
            upload.phase = Phase.RECEIVING
            self.tokens.pop(upload.token, None)
            return Sink(upload, upload.spool)
        return None

    def claim(
        self, token: str, size: int, feeder: Callable[[bool], None], detach: Callable[[], None]
    ) -> BodySink | None:
        """The sink for the body of the upload ``token`` was issued for, arriving by POST
        instead of file.data: None when no upload waits for it (unknown, used, expired).
        ``feeder`` is paused while the disk is behind; ``detach`` is called when the
        upload is over. A size other than what is still needed fails the upload, as a
        wrong file.data does, and is raised."""
        upload = self.tokens.pop(token, None)
        if upload is None or upload.phase is not Phase.READY or upload.ended.done():
            return None
        if size != upload.left:
            over = size > upload.left
            err = (FileTooLarge if over else BadRequest)(
                f"the POST must carry exactly {upload.left} bytes, not {size}"
            )
            self._fail(upload, err)
            raise err
        assert upload.spool is not None
        upload.phase = Phase.RECEIVING
        upload.feeder, upload.detach = feeder, detach
        return PostedSink(
            upload, upload.spool, lambda: self._fail(upload, BadRequest(cut_text(upload)))
        )

    def end(self, req: Request) -> None:
        upload = self._target(req, ending=True)
        if upload is None:
            return
        try:
            sha = get_sha256(req.header, required=True)
        except BadRequest as exc:
            upload.fail(exc)
            return
        if upload.phase is Phase.RECEIVED or (upload.phase is Phase.READY and upload.left == 0):
            assert sha is not None
            upload.ended.set_result(sha)
        else:
            upload.fail(BadRequest("file.end before the upload's file.data"))

    def _target(self, req: Request, *, ending: bool = False) -> Upload | None:
        """The upload a file.data/file.end is for; None (after any error) when there is none."""
        target = get_id(req.header, "target")
        if target is None:
            raise BadRequest(f"{req.op} needs 'target': the id of its file.put")
        state = self.sessions.get(req.session)
        upload = state.active.get(target) if state is not None else None
        if upload is not None and not upload.ended.done():
            return upload
        if state is not None and target in state.dead:
            if ending:
                del state.dead[target]
            return None
        raise BadRequest(f"{req.op}: no upload with id {target} is running on this connection")

    def _fail(self, upload: Upload, exc: ProtocolError) -> None:
        """Fail an upload whose file.data and file.end may still be on their way."""
        state = self._session(upload.session)
        state.dead[upload.rid] = upload.left if upload.phase is Phase.READY else 0
        while len(state.dead) > MAX_DEAD:
            del state.dead[next(iter(state.dead))]
        upload.fail(exc)

    def _spool_failed(self, upload: Upload, exc: OSError) -> None:
        upload.discard = True
        self._fail(upload, _store_error(upload.path, exc))

    def _session(self, session: Session) -> _Sessions:
        state = self.sessions.get(session)
        if state is None:
            state = self.sessions[session] = _Sessions()
            session.on_close(lambda: self.sessions.pop(session, None))
            session.on_eof(lambda: self._eof(state))
        return state

    def _eof(self, state: _Sessions) -> None:
        """The client will send nothing more: uploads still waiting for frames end now
        (their partials stay for a resume) instead of holding their paths until idle."""
        state.eof = True
        for upload in list(state.active.values()):
            _cut_off(upload)

    def _pressure(self, upload: Upload, on: bool) -> None:
        """Stop reading a connection while any of its uploads waits for the disk (the
        POST's own connection when the body comes that way)."""
        if upload.feeder is not None:
            upload.feeder(on)
            return
        session = upload.session
        state = self._session(session)
        state.pressure += 1 if on else -1
        if on and state.pressure == 1:
            session.pause_reading(self)
        elif not on and state.pressure == 0:
            session.resume_reading(self)

    def expire(self, now: float, idle: float) -> None:
        """Fail uploads whose client went quiet between frames (mid-body stalls the
        connection's own timer catches)."""
        for upload in list(self.busy.values()):
            if upload.phase is not Phase.RECEIVING and now - upload.last > idle:
                upload.fail(LimitIdle(f"upload of {upload.path} idle for {idle:g} s"))
