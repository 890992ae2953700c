"""Files on ``AsyncClient``: the same transfers, awaited.

While an upload's body goes out, frames that other tasks send wait in ``_held``, so
none lands inside the body.
"""

from __future__ import annotations

import asyncio
import io
import os
import weakref
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from .common import Reply
from .errors import ConnectionClosed
from .filework import (
    DATA,
    READY,
    Progress,
    PutPlan,
    Transfer,
    data_header,
    end_frame,
    got_reply,
    ready_or_done,
    report,
    sent_result,
    verified,
)
from .localfile import SLICE, LocalPartial, hashing

if TYPE_CHECKING:
    from .aio import Chunk

__all__ = ["AsyncHost", "get_once", "put_once"]

_BODY_LOCKS: weakref.WeakKeyDictionary[Any, asyncio.Lock] = weakref.WeakKeyDictionary()
"""One body at a time per client: a file.data frame cannot be split."""

COPY = 1 << 20


class AsyncHost(Protocol):
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


async def put_once(
    client: AsyncHost,
    src: io.BufferedReader,
    local: Path,
    plan: PutPlan,
    progress: Progress | None,
) -> Transfer:
    rid = client.start_stream("file.put", partial=READY, **plan.fields())
    items = client.follow(rid)
    skipped = ready_or_done(await anext(items), plan, local)
    if skipped is not None:
        return skipped
    digest = asyncio.wrap_future(hashing(local, src, plan.total))
    await send_body(client, rid, src, plan, progress)
    client._write(end_frame(rid, await digest))
    return sent_result(plan, local, await anext(items))


async def send_body(
    client: AsyncHost, rid: int, src: io.BufferedReader, plan: PutPlan, progress: Progress | None
) -> None:
    """The file.data frame; other frames wait in ``_held`` so none lands inside the body,
    and a second upload's body waits for the lock.

    ``loop.sendfile`` sends without a copy where the loop can (asyncio's own, on plain
    sockets); uvloop and TLS cannot, so the bytes are read in a thread and written.
    """
    lock = _BODY_LOCKS.setdefault(client, asyncio.Lock())
    async with lock:
        await _send_body(client, rid, src, plan, progress)


async def _send_body(
    client: AsyncHost, rid: int, src: io.BufferedReader, plan: PutPlan, progress: Progress | None
) -> None:
    transport = client._transport
    if transport is None or transport.is_closing():
        raise ConnectionClosed("the connection is closed")
    client._flush()
    client._held = bytearray()
    try:
        transport.write(data_header(rid, plan.total - plan.offset))
        pos, zero_copy = plan.offset, True
        while pos < plan.total:
            n = min(SLICE, plan.total - pos)
            if zero_copy:
                try:
                    await client._loop.sendfile(transport, src, pos, n, fallback=False)
                except (NotImplementedError, RuntimeError):
                    zero_copy = False
            if not zero_copy:
                await copy_body(client, transport, src, pos, n)
            pos += n
            report(progress, pos, plan.total)
    finally:
        held, client._held = client._held, None
        if held:
            client._write(bytes(held))


async def copy_body(
    client: AsyncHost, transport: asyncio.Transport, src: io.BufferedReader, pos: int, n: int
) -> None:
    end = pos + n
    while pos < end:
        chunk = await asyncio.to_thread(os.pread, src.fileno(), min(COPY, end - pos), pos)
        if not chunk:
            raise ConnectionClosed(f"{src.name} shrank while it was being sent")
        transport.write(chunk)
        pos += len(chunk)
        await client.drain()


async def get_once(
    client: AsyncHost, remote: str, part: LocalPartial, progress: Progress | None
) -> Transfer:
    rid = client.start_stream("file.get", partial=DATA, path=remote, offset=part.offset)
    total, sha = 0, ""
    async for item in client.follow(rid):
        if isinstance(item, Reply):
            total, sha = got_reply(remote, part, item, total)
        else:
            if not part.put_nowait(item):
                await asyncio.to_thread(part.put, item)
            report(progress, part.written, total)
    return await asyncio.to_thread(verified, remote, part, total, sha)
