"""Files under faults: dropped uploads, a killed server, a full disk, readers mid-write."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from sockhub import Client
from sockhub.protocol.errors import FileQuota, FileTooLarge
from sockhub.server.users import UserStore

from .files_support import (
    USER,
    RawUpload,
    ServerProcess,
    connect,
    files_server,
    interrupt_upload,
    partials,
    settle,
    sha,
    stored,
)

MiB = 1024 * 1024


def test_dropped_upload_leaves_nothing_and_resumes(tmp_path: Path) -> None:
    data = os.urandom(3 * MiB)
    local = tmp_path / "up.bin"
    local.write_bytes(data)
    with files_server(tmp_path / "data") as (srv, key):
        interrupt_upload(srv, key, "f.bin", len(data), data[:MiB])
        assert not stored(srv, "f.bin").exists()
        [part] = partials(srv)
        assert part.stat().st_size == MiB
        with connect(srv, key) as c:
            seen: list[int] = []
            result = c.put(local, "f.bin", progress=lambda done, total: seen.append(done))
        assert (result.offset, result.sent, result.sha256) == (MiB, 2 * MiB, sha(data))
        assert seen[-1] == len(data) and seen[0] > MiB
        assert stored(srv, "f.bin").read_bytes() == data
        assert partials(srv) == []


def test_reader_never_sees_a_half_written_file(tmp_path: Path) -> None:
    old, new = b"o" * (2 * MiB), os.urandom(4 * MiB)
    with files_server(tmp_path / "data") as (srv, key), connect(srv, key) as c:
        (tmp_path / "old").write_bytes(old)
        c.put(tmp_path / "old", "f")
        up = RawUpload(c, "f", len(new), overwrite=True)
        up.ready()
        up.data_header(len(new))
        up.raw(new[: 3 * MiB])
        assert stored(srv, "f").read_bytes() == old  # mid-upload: still the old file
        up.raw(new[3 * MiB :])
        up.end(sha(new))
        assert up.final().op == "ok"
        assert stored(srv, "f").read_bytes() == new

        newer = os.urandom(8 * MiB)
        (tmp_path / "newer").write_bytes(newer)
        seen: set[str] = set()
        stop = threading.Event()

        def read() -> None:
            while not stop.is_set():
                seen.add(sha(stored(srv, "f").read_bytes()))

        reader = threading.Thread(target=read)
        reader.start()
        try:
            for _ in range(3):
                c.put(tmp_path / "newer", "f", overwrite=True)
                c.put(tmp_path / "old", "f", overwrite=True)
        finally:
            stop.set()
            reader.join()
        assert seen <= {sha(new), sha(newer), sha(old)}


@pytest.mark.slow
def test_kill_9_mid_upload(tmp_path: Path) -> None:
    data = tmp_path / "data"
    key = UserStore(data).add(USER, ("files",))
    old, new = os.urandom(MiB), os.urandom(16 * MiB)
    (tmp_path / "old").write_bytes(old)
    (tmp_path / "new").write_bytes(new)
    with ServerProcess(data) as server:
        with Client.connect(server.address, user=USER, key=key) as c:
            c.put(tmp_path / "old", "f")
            up = RawUpload(c, "f", len(new), overwrite=True)
            up.ready()
            up.data_header(len(new))
            up.raw(new[: 9 * MiB])
            server.kill()
    assert (data / "files" / "f").read_bytes() == old
    with ServerProcess(data) as server:
        with Client.connect(server.address, user=USER, key=key) as c:
            result = c.put(tmp_path / "new", "f", overwrite=True)
        assert result.sha256 == sha(new) and result.offset + result.sent == len(new)
        server.stop()
    assert (data / "files" / "f").read_bytes() == new


@contextmanager
def small_tmpfs(where: Path, size: str) -> Iterator[Path]:
    where.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
def test_disk_full(tmp_path: Path) -> None:
    (tmp_path / "big").write_bytes(os.urandom(6 * MiB))
    (tmp_path / "small").write_bytes(b"still works")
    with small_tmpfs(tmp_path / "data", "4m") as data:
        with files_server(data) as (srv, key), connect(srv, key) as c:
            with pytest.raises(FileQuota, match="disk is full"):
                c.put(tmp_path / "big", "big")
            settle(srv)
            assert not stored(srv, "big").exists()
            assert partials(srv) == []
            assert c.put(tmp_path / "small", "small").size == 11


def _small_files_only() -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (2 * MiB, 2 * MiB))


@pytest.mark.slow
def test_file_size_limit_of_the_process(tmp_path: Path) -> None:
    data = tmp_path / "data"
    key = UserStore(data).add(USER, ("files",))
    (tmp_path / "big").write_bytes(os.urandom(3 * MiB))
    with ServerProcess(data, preexec=_small_files_only) as server:
        with Client.connect(server.address, user=USER, key=key) as c:
            with pytest.raises(FileTooLarge, match="server's disk"):
                c.put(tmp_path / "big", "big")
            (tmp_path / "ok").write_bytes(b"fine")
            assert c.put(tmp_path / "ok", "ok").size == 4
        server.stop()
    assert not (data / "files" / "big").exists()
    assert list((data / "files-partial").glob("*.part")) == []


def test_old_partials_expire(tmp_path: Path) -> None:
    data = tmp_path / "data"
    for age, offset in ((0, MiB), (10 * 24 * 3600, 0)):
        with files_server(data, file_partial_max_age=3600) as (srv, key):
            interrupt_upload(srv, key, "f", 2 * MiB, b"x" * MiB)
        [part] = partials(srv)
        when = time.time() - age
        os.utime(part, (when, when))
        with files_server(data, file_partial_max_age=3600) as (srv, key), connect(srv, key) as c:
            up = RawUpload(c, "f", 2 * MiB)
            assert up.ready().header["offset"] == offset
            up.data_header(2 * MiB - offset)
            up.raw(b"x" * (2 * MiB - offset))
            up.end(sha(b"x" * 2 * MiB))
            assert up.final().op == "ok"
            c.delete("f")


def test_download_resumes_from_the_local_partial(tmp_path: Path) -> None:
    data = os.urandom(5 * MiB)
    (tmp_path / "src").write_bytes(data)
    with files_server(tmp_path / "data") as (srv, key), connect(srv, key) as c:
        c.put(tmp_path / "src", "f")
        out = tmp_path / "out"
        out.mkdir()
        (out / ".f.sockhub-part").write_bytes(data[: 2 * MiB])
        r = c.get("f", out)
        assert (r.offset, r.sent, r.sha256) == (2 * MiB, 3 * MiB, sha(data))
        assert (out / "f").read_bytes() == data
        assert not (out / ".f.sockhub-part").exists()
        (out / ".f.sockhub-part").write_bytes(os.urandom(MiB))  # bytes of something else
        r = c.get("f", out / "again")
        assert (out / "again").read_bytes() == data
        r = c.get("f", out)
        assert (r.offset, r.sent) == (0, len(data))  # started again after the mismatch
        assert (out / "f").read_bytes() == data


def test_frames_wait_while_a_file_is_sent(tmp_path: Path) -> None:
    data = os.urandom(24 * MiB)
    (tmp_path / "src").write_bytes(data)
    with (
        files_server(tmp_path / "data") as (srv, key),
        connect(srv, key, queue_bytes=32 * MiB) as c,
    ):  # the whole body is held
        c.put(tmp_path / "src", "f")
        rid = c.start_stream("file.get", partial=("file.data",), path="f", offset=0)
        for _ in range(20):
            assert c.request("ping").op == "pong"
        body = b"".join(bytes(item) for item in c.follow(rid) if isinstance(item, bytes))
        assert body == data


@pytest.mark.parametrize("transport", ["tls", "unix"])
def test_other_transports(tmp_path: Path, transport: str) -> None:
    data = os.urandom(3 * MiB + 5)
    (tmp_path / "src").write_bytes(data)
    sock = tmp_path / "s.sock"
    settings = {"tls": True} if transport == "tls" else {"unix": sock}
    with files_server(tmp_path / "data", **settings) as (srv, key):
        extra = (
            {"tls": True, "known_hosts": str(tmp_path / "kh")}
            if transport == "tls"
            else {"address": f"unix:{sock}"}
        )
        with connect(srv, key, **extra) as c:
            assert c.put(tmp_path / "src", "f").sha256 == sha(data)
            assert c.get("f", tmp_path / "back").sha256 == sha(data)
    assert (tmp_path / "back").read_bytes() == data


def test_a_partial_of_other_content_is_caught_and_replaced(tmp_path: Path) -> None:
    data = os.urandom(3 * MiB)
    (tmp_path / "src").write_bytes(data)
    with files_server(tmp_path / "data") as (srv, key):
        interrupt_upload(srv, key, "f", len(data), os.urandom(MiB))  # bytes of something else
        with connect(srv, key) as c:
            result = c.put(tmp_path / "src", "f")
        assert (result.offset, result.sent, result.sha256) == (0, len(data), sha(data))
        assert stored(srv, "f").read_bytes() == data
