"""Bounds that were module constants are limits now: settable, and used where they bound.

Each is set to an extreme through the server's configuration, and the part it bounds
is driven at that extreme over real sockets.
"""

from __future__ import annotations

import os
from pathlib import Path

from sockhub import Client
from sockhub.server import load_config
from sockhub.server.background import Background
from sockhub.server.budget import Budget
from sockhub.server.service import ServerContext
from sockhub.server.users import UserStore
from sockhub.services.chat.service import make_broker
from sockhub.services.exec import service as exec_service
from sockhub.services.exec import spawn
from sockhub.services.files import browse, tree, upload
from sockhub.services.files.service import FilesService

from .conftest import RawPeer, raw_prefix, running_server
from .files_support import connect, files_server, sha, stored
from .test_chat_history import Node


async def test_chat_seq_lookahead_bounds_the_jump_after_a_crash(tmp_path: Path) -> None:
    """After a crash numbering resumes just above the stored mark: at most
    ``chat_seq_lookahead`` numbers are skipped."""
    config = load_config({"data": tmp_path, "chat_seq_lookahead": 7}, env={})
    ctx = ServerContext(config, UserStore(tmp_path), Background(), Budget("spools", 1))
    broker = make_broker(ctx)
    await broker.start(Node())
    assert [await broker.publish("r", "w", b"x") for _ in range(5)] == [1, 2, 3, 4, 5]
    await broker._store.close()  # type: ignore[attr-defined]  # a crash: no clean stop
    broker = make_broker(ctx)
    await broker.start(Node())
    assert await broker.publish("r", "w", b"after the crash") == 5 + 7 + 1
    await broker.stop()


def test_file_spool_high_of_one_byte_still_moves_every_byte(tmp_path: Path) -> None:
    """The smallest spool: the connection is paused after every received buffer, and the
    upload is still whole and verified."""
    data = os.urandom(5 * 1024 * 1024 + 17)
    local = tmp_path / "big.bin"
    local.write_bytes(data)
    with files_server(tmp_path / "data", file_spool_high=1) as (srv, key):
        with connect(srv, key) as client:
            result = client.put(local, "big.bin")
        assert result.sha256 == sha(data)
        assert stored(srv, "big.bin").read_bytes() == data


def test_file_workers_is_the_thread_pool_size(tmp_path: Path) -> None:
    with files_server(tmp_path / "data", file_workers=1) as (srv, key):
        assert srv.server is not None
        (service,) = [s for s in srv.server.services if isinstance(s, FilesService)]
        assert srv.call(lambda: service.store.executor._max_workers) == 1
        with connect(srv, key) as client:  # one thread serves everything, in turn
            for n in range(3):
                (tmp_path / f"f{n}").write_bytes(b"%d" % n * 1000)
                client.put(tmp_path / f"f{n}", f"f{n}")
            assert sorted(e.name for e in client.list("")) == ["f0", "f1", "f2"]


def test_exec_input_high_of_one_byte_still_feeds_all_input(tmp_path: Path) -> None:
    with running_server(tmp_path / "data", exec=True, exec_input_high=1) as srv:
        key = srv.add_user("alice", ("exec",))
        data = os.urandom(3 * 1024 * 1024)
        with Client.connect(srv.address, user="alice", key=key) as client:
            done = client.run(["sha256sum"], input=data)
        assert done.status == 0 and done.stdout.split()[0].decode() == sha(data)


def test_close_linger_keeps_draining_a_failed_connection(tmp_path: Path) -> None:
    """After a fatal error the server half-closes and reads (and drops) input for
    ``close_linger`` seconds; set to an hour, the connection stays until the client goes."""
    with running_server(tmp_path / "data", close_linger=3600) as srv:
        assert srv.server is not None
        peer = RawPeer(srv.port)
        peer.send(raw_prefix(0))  # header length 0: fatal frame.bad
        assert peer.frame().header["code"] == "frame.bad"
        assert peer.closed_by_server()  # EOF: the server's side is done writing
        for _ in range(64):
            peer.send(b"x" * 65_536)  # still read and dropped, no reset
        assert srv.call(lambda: len(srv.server.connections)) == 1  # type: ignore[union-attr]
        peer.close()
        srv.wait_until(lambda: not srv.server.connections)  # type: ignore[union-attr]


def test_fixed_bounds_are_documented_with_their_values() -> None:
    """docs/limits.md lists the bounds that are not settings; its figures are the code's."""
    page = (Path(__file__).resolve().parent.parent / "docs" / "limits.md").read_text()
    fixed = page.split("## Fixed bounds", 1)[1]
    for value in (
        browse.PAGE_BYTES,
        upload.MAX_DEAD,
        exec_service._RECENT,
        spawn.PIPE_SIZE // 1024,
        tree.MAX_LINKS,
    ):
        assert f"| {value:,}" in fixed, value
