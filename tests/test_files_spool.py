"""The upload spool on its own: reads landing in its pooled buffers and chunks given as
they are, in any mix, reach the file in order with the sha256 of exactly those bytes;
a partly filled buffer is not lost when the spool closes early; the pool stays bounded."""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sockhub.services.files.spool import BUFFER, Spool

MiB = 1024 * 1024


def spool_for(path: Path, total: int, executor: ThreadPoolExecutor, high: int = 4 * MiB) -> Spool:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    return Spool(
        fd,
        0,
        total,
        executor=executor,
        loop=asyncio.get_running_loop(),
        pressure=lambda on: None,
        failed=lambda exc: None,
        high=high,
    )


def feed(spool: Spool, data: bytes, rng: random.Random) -> None:
    """Give ``data`` as a socket reader would: into a lent buffer when one is lent
    (a read of any size up to what it offers), else as a chunk of its own."""
    at = 0
    while at < len(data):
        size = rng.choice((1, 100, 4096, 70_000, 300_000, 2 * MiB))
        if rng.random() < 0.8 and (view := spool.buffer(len(data) - at)) is not None:
            n = min(size, len(view))
            view[:n] = data[at : at + n]
            spool.write(view[:n])
        else:
            n = min(size, len(data) - at)
            spool.write(data[at : at + n])
        at += n


async def test_reads_into_buffers_and_chunks_in_any_mix_arrive_in_order(tmp_path: Path) -> None:
    data = os.urandom(9 * MiB + 123)
    with ThreadPoolExecutor(2) as executor:
        for seed in range(5):
            path = tmp_path / f"mix{seed}"
            spool = spool_for(path, len(data), executor)
            feed(spool, data, random.Random(seed))
            assert await spool.finish() == hashlib.sha256(data).hexdigest()
            await spool.close()
            assert path.read_bytes() == data


async def test_a_partly_filled_buffer_reaches_the_disk_when_the_spool_closes(
    tmp_path: Path,
) -> None:
    """A body cut short: what was read into the buffer being filled is on disk once the
    spool closes (a resume starts after it)."""
    with ThreadPoolExecutor(1) as executor:
        path = tmp_path / "cut"
        spool = spool_for(path, 10 * MiB, executor)
        view = spool.buffer(10 * MiB)
        assert view is not None and len(view) == BUFFER
        view[:5000] = b"a" * 5000
        spool.write(view[:5000])
        await spool.close()
        assert spool.written == 5000
        assert path.read_bytes() == b"a" * 5000


async def test_the_pool_lends_no_more_than_its_bound(tmp_path: Path) -> None:
    """With the disk not taking anything, full buffers queue up to high // BUFFER + 2,
    then no more is lent: the caller reads into its own buffer (and is paused)."""
    with ThreadPoolExecutor(1) as executor:
        gate = asyncio.Event()
        spool = spool_for(tmp_path / "held", 64 * MiB, executor, high=2 * MiB)
        real_store = spool._store
        loop = asyncio.get_running_loop()

        def held(chunk: bytes | bytearray | memoryview) -> None:
            asyncio.run_coroutine_threadsafe(gate.wait(), loop).result(60)
            real_store(chunk)

        spool._store = held  # type: ignore[method-assign]
        lent = 0
        while (view := spool.buffer(64 * MiB)) is not None:
            lent += 1
            spool.write(view)  # a whole buffer: queued at once
        assert lent == 2 * MiB // BUFFER + 2
        gate.set()
        spool.write(b"x")
        assert await spool.finish()
        await spool.close()
