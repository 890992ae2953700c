"""Files against a hostile tree and a starved server: FIFOs, descriptors, quota, publish."""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import time
from pathlib import Path

import pytest

from sockhub import AsyncClient, Client
from sockhub.protocol.errors import FileExists, FileNotFound, FileQuota, LimitBusy
from sockhub.services.files import browse, noreplace
from sockhub.services.files.quota import BLOCK

from .conftest import RunningServer
from .files_support import USER, connect, files_server, stored

GETS = 16


def _release_readers(fifo: Path) -> None:
    """Open the write end once, which frees any reader stuck in open() (a server without
    the fix would otherwise keep its threads, and the test its teardown, for ever)."""
    with contextlib.suppress(OSError):
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))


def test_fifos_in_the_tree_never_block_the_service(tmp_path: Path) -> None:
    with files_server(tmp_path / "data") as (srv, key):
        fifo = stored(srv, "pipe")
        fifo.parent.mkdir(parents=True, exist_ok=True)
        os.mkfifo(fifo)

        async def main() -> None:
            async def one(i: int) -> BaseException | None:
                async with await AsyncClient.connect(srv.address, user=USER, key=key) as c:
                    try:
                        await c.get("pipe", tmp_path / f"got{i}")
                    except FileNotFound as exc:
                        return exc
                return None

            try:
                done = await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(GETS))), 60)
            finally:
                _release_readers(fifo)
            assert all(isinstance(e, FileNotFound) for e in done)

        asyncio.run(main())
        with connect(srv, key) as c:
            (tmp_path / "plain").write_bytes(b"still served")
            c.put(tmp_path / "plain", "plain")
            c.get("plain", tmp_path / "back")
            assert (tmp_path / "back").read_bytes() == b"still served"
            assert [e.name for e in c.list("") if e.name == "pipe"] in ([], ["pipe"])
            with pytest.raises(FileNotFound, match="not a regular file"):
                c.stat("pipe", hash=True)


def test_out_of_descriptors_is_busy_not_internal(tmp_path: Path) -> None:
    with files_server(tmp_path / "data") as (srv, key), connect(srv, key) as c:
        (tmp_path / "f").write_bytes(b"x")
        c.put(tmp_path / "f", "f")
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        held: list[int] = []
        resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + 64, hard))
        try:
            with contextlib.suppress(OSError):
                while True:
                    held.append(os.open("/dev/null", os.O_RDONLY))
            with pytest.raises(LimitBusy):
                c.stat("f", hash=True)
        finally:
            for fd in held:
                os.close(fd)
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        assert c.stat("f").size == 1


def test_quota_counts_blocks_not_bytes(tmp_path: Path) -> None:
    """The issue's 2,000 one-byte files under a 4 KiB quota: each costs a whole block."""
    (tmp_path / "one").write_bytes(b"x")
    with (
        files_server(tmp_path / "data", file_quota=2 * BLOCK) as (srv, key),
        connect(srv, key) as c,
    ):
        c.put(tmp_path / "one", "a")
        c.put(tmp_path / "one", "b")
        with pytest.raises(FileQuota):
            c.put(tmp_path / "one", "c")
        c.delete("b")
        c.put(tmp_path / "one", "c")


def test_quota_counts_inodes_folders_included(tmp_path: Path) -> None:
    (tmp_path / "empty").write_bytes(b"")
    with files_server(tmp_path / "data", file_quota_inodes=3) as (srv, key), connect(srv, key) as c:
        c.put(tmp_path / "empty", "a/b/c")  # two folders and a file: three inodes
        with pytest.raises(FileQuota, match="files/folders"):
            c.put(tmp_path / "empty", "d")
        c.delete("a/b/c")
        c.delete("a/b")
        c.put(tmp_path / "empty", "a/d")  # a, a/d
        c.put(tmp_path / "empty", "e")
        with pytest.raises(FileQuota):
            c.put(tmp_path / "empty", "f")


def test_publish_moves_the_partial_without_a_second_name(tmp_path: Path) -> None:
    """renameat2(RENAME_NOREPLACE): one step, so the partial and the file never share an inode."""
    assert noreplace._RENAMEAT2 is not None  # Linux with glibc: the fallback is not in use
    folder = tmp_path / "f"
    folder.mkdir()
    (folder / "part").write_bytes(b"new")
    (folder / "taken").write_bytes(b"old")
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with pytest.raises(FileExistsError):
            noreplace.rename_noreplace("part", "taken", src_dir_fd=fd, dst_dir_fd=fd)
        assert (folder / "taken").read_bytes() == b"old" and (folder / "part").exists()
        noreplace.rename_noreplace("part", "free", src_dir_fd=fd, dst_dir_fd=fd)
    finally:
        os.close(fd)
    assert not (folder / "part").exists() and (folder / "free").stat().st_nlink == 1
    with files_server(tmp_path / "data") as (srv, key), connect(srv, key) as c:
        c.put(folder / "free", "x")
        assert stored(srv, "x").stat().st_nlink == 1
        (folder / "other").write_bytes(b"other")
        with pytest.raises(FileExists):
            c.put(folder / "other", "x")


def _page_through(c: Client, path: str) -> int:
    pages, after = 0, ""
    while True:
        reply = c.request("file.list", path=path, after=after)
        pages += 1
        after = reply.header["entries"][-1]["name"]
        if not reply.header.get("more"):
            return pages


def _counted_reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    reads: list[int] = []
    real = browse._sorted_names

    def counted(fd: int) -> list[str]:
        reads.append(fd)
        return real(fd)

    monkeypatch.setattr(browse, "_sorted_names", counted)
    return reads


def _big_folder(srv: RunningServer) -> Path:
    folder = stored(srv, "big")
    folder.mkdir(parents=True)
    for i in range(3000):
        (folder / f"{i:05d}-{'n' * 40}").write_bytes(b"")
    past = time.time() - 60
    os.utime(folder, (past, past))  # settled: its listing may be kept
    return folder


def test_paging_a_big_folder_reads_it_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every page used to re-read, re-stat and re-sort the whole folder."""
    reads = _counted_reads(monkeypatch)
    with files_server(tmp_path / "data") as (srv, key), connect(srv, key) as c:
        folder = _big_folder(srv)
        assert _page_through(c, "big") > 2 and len(reads) == 1
        (folder / "zzz").write_bytes(b"")  # the folder changed: read again
        assert c.list("big")[-1].name == "zzz" and len(reads) >= 2


def test_a_folder_over_the_cache_budget_is_not_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads = _counted_reads(monkeypatch)
    with files_server(tmp_path / "data", file_list_cache_names=2999) as (srv, key):
        _big_folder(srv)
        with connect(srv, key) as c:
            pages = _page_through(c, "big")
        assert pages > 2 and len(reads) == pages  # read for each page, held nowhere


def test_each_user_has_a_quota_of_its_own(tmp_path: Path) -> None:
    """file_user_quota holds each user to its own files; another user still has room."""
    (tmp_path / "one").write_bytes(b"x")
    settings = {"file_user_quota": 2 * BLOCK, "file_quota": 10 * BLOCK}
    with files_server(tmp_path / "data", **settings) as (srv, key), connect(srv, key) as al:
        other = srv.add_user("bo", ("files",))
        al.put(tmp_path / "one", "a1")
        al.put(tmp_path / "one", "a2")
        with pytest.raises(FileQuota, match="al's quota"):
            al.put(tmp_path / "one", "a3")
        with Client.connect(srv.address, user="bo", key=other) as bo:
            bo.put(tmp_path / "one", "b1")
            bo.delete("a1")  # a shared tree: deleting al's file frees al's room
        al.put(tmp_path / "one", "a3")
        (tmp_path / "two").write_bytes(b"xx")
        al.put(tmp_path / "two", "a3", overwrite=True)  # replacing its own file fits
        with pytest.raises(FileQuota):
            al.put(tmp_path / "one", "a4")
    with files_server(tmp_path / "data", **settings) as (srv, key), connect(srv, key) as al:
        with pytest.raises(FileQuota, match="al's quota"):  # counted again after a restart
            al.put(tmp_path / "one", "a5")
