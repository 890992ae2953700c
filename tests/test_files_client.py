"""The Python API for files on both clients: results, progress, retries, names."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
import uvloop

from sockhub import AsyncClient
from sockhub.client.common import Reply
from sockhub.client.filework import entries_of
from sockhub.protocol.errors import FileBadPath, FileExists, FileNotFound

from .conftest import RunningServer
from .files_support import USER, connect, files_server, sha, stored

MiB = 1024 * 1024
LOOPS: dict[str, Callable[[Coroutine[Any, Any, None]], None]] = {
    "asyncio": asyncio.run,  # loop.sendfile: zero copy
    "uvloop": uvloop.run,  # no loop.sendfile: the copying path
}


async def _async_roundtrip(srv: RunningServer, key: bytes, tmp: Path) -> None:
    data = os.urandom(9 * MiB + 3)
    (tmp / "src").write_bytes(data)
    async with await AsyncClient.connect(srv.address, user=USER, key=key) as c:
        seen: list[int] = []
        pinging = asyncio.gather(*(c.ping() for _ in range(50)))
        put = await c.put(tmp / "src", "dir/f", progress=lambda done, total: seen.append(done))
        await pinging  # frames sent during the body waited behind it
        assert (put.size, put.sha256, put.sent, put.unchanged) == (
            len(data),
            sha(data),
            len(data),
            False,
        )
        assert seen[-1] == len(data)
        both = await asyncio.gather(c.put(tmp / "src", "dir/g"), c.put(tmp / "src", "dir/h"))
        assert [r.sha256 for r in both] == [sha(data)] * 2
        await c.delete("dir/g")
        await c.delete("dir/h")
        again = await c.put(tmp / "src", "dir/f")
        assert again.unchanged and again.sent == 0
        skipped = await c.put(tmp / "src", "dir/f", overwrite=True, sha256=True)
        assert skipped.unchanged
        got = await c.get("dir/f", tmp)
        assert got.local == tmp / "f" and (tmp / "f").read_bytes() == data
        assert [e.name for e in await c.list("dir")] == ["f"]
        assert (await c.stat("dir/f", hash=True)).sha256 == sha(data)
        await c.delete("dir/f")
        with pytest.raises(FileNotFound):
            await c.stat("dir/f")
    assert stored(srv, "dir").is_dir()


@pytest.mark.parametrize("loop", sorted(LOOPS))
def test_async_client(tmp_path: Path, loop: str) -> None:
    with files_server(tmp_path / "data") as (srv, key):
        LOOPS[loop](_async_roundtrip(srv, key, tmp_path))


def test_sync_results_and_retries(tmp_path: Path) -> None:
    one, two = b"one" * 1000, b"two" * 1000
    (tmp_path / "one").write_bytes(one)
    (tmp_path / "two").write_bytes(two)
    with files_server(tmp_path / "data") as (srv, key), connect(srv, key) as c:
        assert c.put(tmp_path / "one", "f").sent == len(one)
        with pytest.raises(FileExists):  # other content, no overwrite
            c.put(tmp_path / "two", "f")
        r = c.put(tmp_path / "two", "f", overwrite=True, sha256=sha(two))
        assert r.sent == len(two) and not r.unchanged
        r = c.put(tmp_path / "two", "f", sha256=sha(two))
        assert r.unchanged and r.sent == 0
        out = tmp_path / "out"
        out.mkdir()
        assert c.get("f", out).local == out / "f"
        assert c.get("f", out / "renamed").local == out / "renamed"
        with pytest.raises(FileBadPath):
            c.get("../f", out)
        with pytest.raises(FileNotFound):
            c.get("missing", out)
        assert sorted(p.name for p in out.iterdir()) == ["f", "renamed"]  # no partial left


def test_partial_is_never_a_symlink(tmp_path: Path) -> None:
    (tmp_path / "src").write_bytes(b"data")
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep me")
    with files_server(tmp_path / "data") as (srv, key), connect(srv, key) as c:
        c.put(tmp_path / "src", "f")
        out = tmp_path / "out"
        out.mkdir()
        os.symlink(victim, out / ".f.sockhub-part")
        with pytest.raises(OSError):
            c.get("f", out)
    assert victim.read_bytes() == b"keep me"


def test_names_from_a_server_are_checked() -> None:
    reply = Reply(
        {
            "entries": [
                {"name": "ok.txt", "type": "file", "size": 1, "mtime": 1.0},
                {"name": "../escape", "type": "file"},
                {"name": "a/b", "type": "file"},
                {"name": "bell\x07", "type": "file"},
                {"name": "..", "type": "dir"},
                {"name": 5},
                "junk",
            ],
            "more": True,
        }
    )
    entries, after = entries_of(reply)
    assert [e.name for e in entries] == ["ok.txt"]
    assert after == "ok.txt"
