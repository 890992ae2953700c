"""Files on ``AsyncClient``: the same transfers, awaited.

While an upload's body goes out, frames that other tasks send wait behind it
(``Writer.exclusive``), so none lands inside the body.
"""

from __future__ import annotations

import asyncio
import io
import os
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any, Protocol

from ..protocol.client_events import Chunk, Reply
from .aio_writer import BodyWriter, Writer
from .errors import LocalFileChanged
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

__all__ = ["AsyncHost", "get_once", "put_once"]

COPY = 1 << 20


class AsyncHost(Protocol):
    """What ``AsyncClient`` offers the files code: its public methods only."""

    @property
    def writer(self) -> Writer: ...

    def request(self, op: str, body: bytes = b"", **fields: Any) -> asyncio.Future[Reply]: ...

    def start_stream(
        self, op: str, body: bytes = b"", *, partial: Iterable[str], **fields: Any
    ) -> int: ...

    def follow(self, rid: int) -> AsyncIterator[Reply | Chunk]: ...


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
    client.writer.write(end_frame(rid, await digest))
    return sent_result(plan, local, await anext(items))


async def send_body(
    client: AsyncHost, rid: int, src: io.BufferedReader, plan: PutPlan, progress: Progress | None
) -> None:
    """The file.data frame, alone on the wire while it goes (``Writer.exclusive``).

    ``loop.sendfile`` sends without a copy where the loop can (asyncio's own, on plain
    sockets); uvloop and TLS cannot, so the bytes are read in a thread and written.
    """
    async with client.writer.exclusive() as body:
        body.write(data_header(rid, plan.total - plan.offset))
        pos = plan.offset
        while pos < plan.total:
            n = min(SLICE, plan.total - pos)
            if not await body.sendfile(src, pos, n):
                await copy_body(body, src, pos, n)
            pos += n
            report(progress, pos, plan.total)


async def copy_body(body: BodyWriter, src: io.BufferedReader, pos: int, n: int) -> None:
    end = pos + n
    while pos < end:
        chunk = await asyncio.to_thread(os.pread, src.fileno(), min(COPY, end - pos), pos)
        if not chunk:
            raise LocalFileChanged(f"{src.name} shrank while it was being sent")
        body.write(chunk)
        pos += len(chunk)
        await body.drain()


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
