"""Every op and error code of PROTOCOL.md section 7, against a real server."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from sockhub import Client
from sockhub.protocol.errors import (
    AuthRequired,
    BadRequest,
    FileBadPath,
    FileExists,
    FileHashMismatch,
    FileIsDir,
    FileNotDir,
    FileNotEmpty,
    FileNotFound,
    FileQuota,
    FileTooLarge,
    FrameTooLarge,
    LimitBusy,
)
from sockhub.protocol.frames import encode_frame
from sockhub.services.files.partials import RESUME_FROM
from sockhub.services.files.quota import BLOCK

from .conftest import RunningServer
from .files_support import (
    RawUpload,
    connect,
    files_server,
    files_service,
    interrupt_upload,
    partials,
    settle,
    sha,
    stored,
)


@pytest.fixture
def fs(tmp_path: Path) -> Iterator[tuple[RunningServer, Client]]:
    with files_server(tmp_path / "data") as (srv, key), connect(srv, key) as client:
        yield srv, client


def put_bytes(client: Client, tmp_path: Path, remote: str, data: bytes, **kw: object) -> object:
    local = tmp_path / "upload.bin"
    local.write_bytes(data)
    return client.put(local, remote, **kw)  # type: ignore[arg-type]


def test_put_get_list_stat_delete(fs: tuple[RunningServer, Client], tmp_path: Path) -> None:
    srv, c = fs
    data = os.urandom(300_000)
    r = put_bytes(c, tmp_path, "docs/a.bin", data)
    assert (r.size, r.sha256, r.sent, r.offset, r.unchanged) == (  # type: ignore[attr-defined]
        len(data),
        sha(data),
        len(data),
        0,
        False,
    )
    assert stored(srv, "docs/a.bin").read_bytes() == data
    [entry] = c.list("")
    assert (entry.name, entry.type) == ("docs", "dir")
    [entry] = c.list("docs")
    assert (entry.name, entry.type, entry.size) == ("a.bin", "file", len(data))
    info = c.stat("docs/a.bin", hash=True)
    assert (info.type, info.size, info.sha256) == ("file", len(data), sha(data))
    assert c.stat("docs/a.bin").sha256 is None
    assert c.stat("docs").type == "dir"
    got = c.get("docs/a.bin", tmp_path / "back.bin")
    assert (tmp_path / "back.bin").read_bytes() == data
    assert (got.sha256, got.sent, got.offset) == (sha(data), len(data), 0)
    c.delete("docs/a.bin")
    c.delete("docs")
    assert c.list("") == []
    assert partials(srv) == []


def test_empty_file(fs: tuple[RunningServer, Client], tmp_path: Path) -> None:
    srv, c = fs
    assert put_bytes(c, tmp_path, "empty", b"").sha256 == sha(b"")  # type: ignore[attr-defined]
    assert stored(srv, "empty").read_bytes() == b""
    assert c.get("empty", tmp_path / "e").size == 0
    assert (tmp_path / "e").read_bytes() == b""


def test_get_from_offset(fs: tuple[RunningServer, Client], tmp_path: Path) -> None:
    _srv, c = fs
    data = os.urandom(10_000)
    put_bytes(c, tmp_path, "f", data)
    items = list(c.stream("file.get", path="f", offset=4000, partial=("file.data",)))
    head, *chunks, end = items
    assert head.header["offset"] == 4000 and head.header["total"] == 10_000  # type: ignore[union-attr]
    assert b"".join(chunks) == data[4000:]  # type: ignore[arg-type]
    assert end.header["sha256"] == sha(data)  # type: ignore[union-attr]
    with pytest.raises(BadRequest, match="offset"):
        c.request("file.get", path="f", offset=10_001)
    *_, end = c.stream("file.get", path="f", offset=10_000, partial=("file.data",))
    assert end.header["sha256"] == sha(data)  # type: ignore[union-attr]


def test_get_a_window(fs: tuple[RunningServer, Client], tmp_path: Path) -> None:
    """``length`` bounds the bytes sent; only the window that reaches the end has the sha256."""
    _srv, c = fs
    data = os.urandom(10_000)
    put_bytes(c, tmp_path, "f", data)
    got = b""
    ends = []
    for offset, length in ((0, 1), (1, 4000), (4001, 5999), (10_000, 1)):
        head, *chunks, end = c.stream(
            "file.get", path="f", offset=offset, length=length, partial=("file.data",)
        )
        assert head.header["total"] == 10_000  # type: ignore[union-attr]
        window = b"".join(chunks)  # type: ignore[arg-type]
        assert len(window) == min(length, 10_000 - offset)
        got += window
        ends.append(end.header.get("sha256"))  # type: ignore[union-attr]
    assert got == data
    assert ends == [None, None, sha(data), sha(data)]  # 4001 + 5999 is the end
    *_, end = c.stream("file.get", path="f", offset=0, length=10_001, partial=("file.data",))
    assert end.header["sha256"] == sha(data)  # type: ignore[union-attr]
    for length in (0, -1, "1"):
        with pytest.raises(BadRequest, match="length"):
            c.request("file.get", path="f", length=length)


BAD_PATHS = [
    "../x",
    "a/../../x",
    "..",
    ".",
    "a/./b",
    "/etc/passwd",
    "a\\b",
    "..\\x",
    "a//b",
    "a/",
    "a\x00b",
    "a\x01b",
    "tab\there",
    "del\x7f",
    "c1\x85",
    "x" * 256,
    "/".join(["abcdefghij"] * 94),  # 1033 bytes
]


@pytest.mark.parametrize("path", BAD_PATHS)
def test_bad_paths(fs: tuple[RunningServer, Client], path: str) -> None:
    srv, c = fs
    for op, fields in (
        ("file.put", {"total": 1}),
        ("file.get", {}),
        ("file.stat", {}),
        ("file.list", {}),
        ("file.delete", {}),
    ):
        with pytest.raises(FileBadPath):
            c.request(op, path=path, **fields)
    assert c.request("ping").op == "pong"  # the connection is fine
    assert partials(srv) == []


def test_path_limits(fs: tuple[RunningServer, Client], tmp_path: Path) -> None:
    _srv, c = fs
    longest = "/".join(["a" * 255] * 3 + ["b" * 254, "c"])
    assert len(longest.encode()) == 1024
    put_bytes(c, tmp_path, longest, b"x")
    assert c.stat(longest).size == 1
    with pytest.raises(FileBadPath):
        c.request("file.stat", path=longest + "c")  # 1025 bytes
    wide = "é" * 127  # 254 bytes in UTF-8
    put_bytes(c, tmp_path, wide, b"y")
    with pytest.raises(FileBadPath):
        c.request("file.stat", path=wide + "ab")  # 256 bytes


def test_root_paths(fs: tuple[RunningServer, Client]) -> None:
    _srv, c = fs
    assert c.stat("").type == "dir"
    for op, fields in (("file.put", {"total": 1}), ("file.get", {}), ("file.delete", {})):
        with pytest.raises(FileBadPath):
            c.request(op, path="", **fields)
    with pytest.raises(FileBadPath):
        c.request("file.stat", path=7)


def test_symlinks(fs: tuple[RunningServer, Client], tmp_path: Path) -> None:
    srv, c = fs
    secret = tmp_path / "outside"
    secret.mkdir()
    (secret / "secret.txt").write_text("secret")
    root = srv.data / "files"
    (root / "real").mkdir()
    (root / "real" / "in.txt").write_text("inside")
    os.symlink(secret, root / "out_dir")
    os.symlink(secret / "secret.txt", root / "out_file")
    os.symlink("../..", root / "real" / "up")
    os.symlink("real", root / "in_dir")
    os.symlink(root / "real" / "in.txt", root / "in_abs")
    os.symlink("nowhere", root / "dangling")
    for path in ("out_dir/secret.txt", "out_file", "real/up/outside/secret.txt", "out_dir"):
        with pytest.raises(FileBadPath):
            c.request("file.stat", path=path, hash=True)
        with pytest.raises(FileBadPath):
            c.request("file.get", path=path)
    with pytest.raises(FileBadPath):
        put_bytes(c, tmp_path, "out_dir/planted", b"x")
    with pytest.raises(FileBadPath):
        c.list("out_dir")
    assert not (secret / "planted").exists()
    assert c.stat("in_dir/in.txt").size == 6
    c.get("in_abs", tmp_path / "got")
    assert (tmp_path / "got").read_text() == "inside"
    names = {e.name: e.type for e in c.list("")}
    assert names == {"real": "dir", "in_dir": "dir", "in_abs": "file"}
    c.delete("in_abs")  # the link goes, not its target
    assert not (root / "in_abs").is_symlink() and (root / "real" / "in.txt").exists()
    c.delete("out_file")
    assert (secret / "secret.txt").exists()


def test_symlink_swapped_in_during_upload(fs: tuple[RunningServer, Client], tmp_path: Path) -> None:
    srv, c = fs
    outside = tmp_path / "outside"
    outside.mkdir()
    put_bytes(c, tmp_path, "d/first", b"1")
    up = RawUpload(c, "d/second", 4)
    assert up.ready().header["offset"] == 0
    root = srv.data / "files"
    os.rename(root / "d", tmp_path / "moved")
    os.symlink(outside, root / "d")
    up.data_header(4)
    up.raw(b"data")
    up.end(sha(b"data"))
    with pytest.raises(FileBadPath):
        up.final()
    assert list(outside.iterdir()) == []


def test_not_found_exists_is_dir_not_dir(fs: tuple[RunningServer, Client], tmp_path: Path) -> None:
    _srv, c = fs
    put_bytes(c, tmp_path, "dir/file", b"abc")
    for op in ("file.get", "file.stat", "file.delete"):
        with pytest.raises(FileNotFound):
            c.request(op, path="dir/missing")
        with pytest.raises(FileNotFound):
            c.request(op, path="nodir/missing")
    with pytest.raises(FileNotFound):
        c.list("nodir")
    with pytest.raises(FileExists):
        c.request("file.put", path="dir/file", total=3)
    with pytest.raises(FileIsDir):
        c.request("file.get", path="dir")
    with pytest.raises(FileIsDir):
        c.request("file.put", path="dir", total=1, overwrite=True)
    with pytest.raises(FileNotDir):
        c.request("file.get", path="dir/file/x")
    with pytest.raises(FileNotDir):
        c.request("file.put", path="dir/file/x", total=1)
    with pytest.raises(FileNotDir):
        c.list("dir/file")
    with pytest.raises(FileNotEmpty):
        c.delete("dir")


def test_overwrite_and_skip_unchanged(fs: tuple[RunningServer, Client], tmp_path: Path) -> None:
    srv, c = fs
    old, new = b"old content", b"new content!"
    put_bytes(c, tmp_path, "f", old)
    r = put_bytes(c, tmp_path, "f", new, overwrite=True)
    assert r.sent == len(new) and stored(srv, "f").read_bytes() == new  # type: ignore[attr-defined]
    reply = c.request("file.put", path="f", total=len(new), sha256=sha(new))
    assert reply.header == {
        "op": "ok",
        "re": reply.header["re"],
        "path": "f",
        "total": len(new),
        "sha256": sha(new),
        "unchanged": True,
    }
    with pytest.raises(FileExists):  # same size, other content, no overwrite
        c.request("file.put", path="f", total=len(new), sha256=sha(b"x" * len(new)))
    r = put_bytes(c, tmp_path, "f", new)  # exists: the client asks again with the sha256
    assert r.unchanged and r.sent == 0  # type: ignore[attr-defined]


def test_hash_mismatch_stores_nothing(fs: tuple[RunningServer, Client]) -> None:
    srv, c = fs
    up = RawUpload(c, "f", 5)
    up.ready()
    up.data_header(5)
    up.raw(b"hello")
    up.end(sha(b"HELLO"))
    with pytest.raises(FileHashMismatch):
        up.final()
    assert not stored(srv, "f").exists()
    settle(srv)
    assert partials(srv) == []


def test_upfront_sha_does_not_resume_other_content(tmp_path: Path) -> None:
    size = RESUME_FROM * 2
    a, b = sha(b"a" * size), sha(b"b" * size)
    with files_server(tmp_path / "data") as (srv, key):
        assert interrupt_upload(srv, key, "f", size, b"a" * RESUME_FROM, sha256=a) == 0
        assert interrupt_upload(srv, key, "f", size, b"", sha256=a) == RESUME_FROM
        assert interrupt_upload(srv, key, "f", size, b"", sha256=b) == 0


def test_small_uploads_start_over(tmp_path: Path) -> None:
    size = RESUME_FROM - 1
    with files_server(tmp_path / "data") as (srv, key):
        assert interrupt_upload(srv, key, "f", size, b"x" * 1000) == 0
        assert interrupt_upload(srv, key, "f", size, b"") == 0


def test_too_large_at_the_limit(tmp_path: Path) -> None:
    with files_server(tmp_path / "data", file_max_size=1000) as (srv, key), connect(srv, key) as c:
        put_bytes(c, tmp_path, "ok", b"x" * 1000)
        with pytest.raises(FileTooLarge):
            c.request("file.put", path="big", total=1001)


def test_quota_at_the_limit(tmp_path: Path) -> None:
    """Counted in whole blocks (4 KiB here), as the disk counts them."""
    with (
        files_server(tmp_path / "data", file_quota=3 * BLOCK) as (srv, key),
        connect(srv, key) as c,
    ):
        put_bytes(c, tmp_path, "a", b"x" * (BLOCK + 1))  # two blocks
        with pytest.raises(FileQuota):
            c.request("file.put", path="b", total=BLOCK + 1)
        put_bytes(c, tmp_path, "b", b"y" * 400)  # one block: exactly full
        with pytest.raises(FileQuota):
            c.request("file.put", path="c", total=1)
        put_bytes(c, tmp_path, "a", b"z" * 600, overwrite=True)  # replacing frees its blocks
        c.delete("b")
        put_bytes(c, tmp_path, "c", b"w" * 400)
        os.unlink(stored(srv, "c"))  # behind the server's back: a recount finds the room
        files_service(srv).store._rescanned = -1e9
        put_bytes(c, tmp_path, "d", b"v" * BLOCK)


def test_busy_path(tmp_path: Path) -> None:
    with files_server(tmp_path / "data") as (srv, key), connect(srv, key) as c:
        _busy(srv, key, c)


def _busy(srv: RunningServer, key: bytes, c: Client) -> None:
    up = RawUpload(c, "f", 4)
    up.ready()
    with connect(srv, key) as other:
        with pytest.raises(LimitBusy):
            other.request("file.put", path="f", total=4)
        other.request("file.put", path="g", total=0)  # another path is fine
    up.data_header(4)
    up.raw(b"abcd")
    up.end(sha(b"abcd"))
    assert up.final().op == "ok"


def test_data_and_end_errors(fs: tuple[RunningServer, Client]) -> None:
    srv, c = fs
    up = RawUpload(c, "f", 10)
    up.ready()
    up.data_header(4)  # less than total - offset: bad.request ends the upload
    up.raw(b"abcd")
    with pytest.raises(BadRequest, match="exactly 10"):
        up.final()
    up.end(sha(b""))  # dropped: the upload already ended
    with pytest.raises(BadRequest, match="no upload"):
        c.request("file.end", target=999, sha256=sha(b""))
    up = RawUpload(c, "g", 3)
    up.ready()
    up.end(sha(b"abc"))  # before any data
    with pytest.raises(BadRequest, match="before"):
        up.final()
    up = RawUpload(c, "h", 3)
    up.ready()
    up.data_header(3)
    up.raw(b"abc")
    c.send_raw(encode_frame({"op": "file.end", "target": up.rid, "sha256": "xyz"}))
    with pytest.raises(BadRequest, match="sha256"):
        up.final()
    for fields in ({"total": -1}, {"total": "3"}, {"total": 1, "sha256": "zz"}, {}):
        with pytest.raises(BadRequest):
            c.request("file.put", path="k", **fields)
    with pytest.raises(BadRequest):
        c.request("file.get", path="f", offset=-1)
    assert c.request("ping").op == "pong"
    settle(srv)


def test_data_over_the_rest_is_fatal(fs: tuple[RunningServer, Client]) -> None:
    _srv, c = fs
    up = RawUpload(c, "f", 3)
    up.ready()
    up.data_header(4)
    with pytest.raises(FrameTooLarge):
        up.final()


def test_needs_the_files_grant(tmp_path: Path) -> None:
    with files_server(tmp_path / "data") as (srv, _key):
        with Client.connect(srv.address) as anon:
            with pytest.raises(AuthRequired):
                anon.request("file.list", path="")
            anon.send_raw(encode_frame({"op": "file.data", "target": 1}, b"x" * 10))
            assert anon.request("ping").op == "pong"  # the body was skipped cleanly
        key = srv.add_user("chatter", ("chat",))
        with Client.connect(srv.address, user="chatter", key=key) as c:
            with pytest.raises(AuthRequired, match="files"):
                c.request("file.stat", path="")


def test_list_pages(fs: tuple[RunningServer, Client]) -> None:
    srv, c = fs
    root = stored(srv, "many")
    root.mkdir()
    names = [f"file-{i:05d}-{'x' * 40}" for i in range(2000)]
    for name in names:
        (root / name).write_bytes(b"")
    (root / "bad\x01name").write_bytes(b"")  # cannot be named in a request: left out
    first = c.request("file.list", path="many")
    assert first.header["more"] is True and 0 < len(first.header["entries"]) < 2000
    assert [e.name for e in c.list("many")] == names


def test_hash_store_sees_changes_behind_its_back(
    fs: tuple[RunningServer, Client], tmp_path: Path
) -> None:
    srv, c = fs
    put_bytes(c, tmp_path, "f", b"A" * 100)
    path = stored(srv, "f")
    st = path.stat()
    with open(path, "r+b") as fh:  # same size, same mtime, other bytes
        fh.write(b"B")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    changed = b"B" + b"A" * 99
    assert c.stat("f", hash=True).sha256 == sha(changed)
    assert c.get("f", tmp_path / "f").sha256 == sha(changed)
    (stored(srv, "outside-made")).write_bytes(b"made by hand")
    assert c.get("outside-made", tmp_path / "m").sha256 == sha(b"made by hand")
