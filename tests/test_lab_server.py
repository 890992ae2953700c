"""The course's clients through the lab to a real sockhub server: their commands run in the
exec service, their files land in the files tree, their chat shares a sockhub room."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from sockhub.client import Client
from sockhub.lab.check import check
from sockhub.lab.limits import LabLimits
from sockhub.protocol.errors import ProtocolError

from .conftest import RunningServer, running_server
from .lab_support import LabThread, lab, program


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningServer, bytes]]:
    with running_server(tmp_path_factory.mktemp("hub") / "data", exec=True) as srv:
        yield srv, srv.add_user("alice", ("exec", "files", "chat"))


@pytest.fixture(scope="module")
def hub_lab(hub: tuple[RunningServer, bytes]) -> Iterator[LabThread]:
    srv, key = hub
    with lab(server=srv.address, user="alice", key=key, lab_exec=True) as running:
        yield running


EXEC_CASES = [
    ("a351_upper_client", "exec-raw", "echo hello\n", "hello"),
    ("a362_exec_len_client", "exec-len", "echo hello\n", "hello"),
    ("a363_exec_json_client", "exec-json", "echo hello\n", "hello"),
    ("b_struct_client", "exec-len", "seq 1 1000\n", "<class 'int'> 3893"),
    ("b_dict_client", "exec-json-ds", "echo hello\n", "hello"),
    ("b_decimal_client", "exec-decimal", "echo hello\n", "hello"),
    ("c91_client", "exec-len", "echo hello\n", "data_from_server :>>>>\n hello"),
    ("d_exec_client", "exec-status", "echo hello\n", "命令执行结果 hello"),
    ("d_exec_client", "exec-status", "exit 3\n", "命令执行状态3"),
]


@pytest.mark.parametrize(
    ("name", "fmt", "stdin", "want"),
    EXEC_CASES,
    ids=[f"{c[0]}-{c[2].split()[0]}" for c in EXEC_CASES],
)
def test_course_exec_client(
    hub_lab: LabThread, tmp_path: Path, name: str, fmt: str, stdin: str, want: str
) -> None:
    with program(name, hub_lab.port(fmt), tmp_path, stdin) as client:
        client.wait_for(want)


def test_big_output_arrives_whole_with_a_length(hub_lab: LabThread, tmp_path: Path) -> None:
    with program("b_struct_client", hub_lab.port("exec-len"), tmp_path, "seq 1 1000\n") as c:
        c.wait_for("\n1000\n")


def test_ftp_upload_lands_in_the_files_tree(
    hub: tuple[RunningServer, bytes],
    hub_lab: LabThread,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    srv, key = hub
    caplog.set_level(logging.INFO, logger="sockhub.lab")
    (tmp_path / "a.txt").write_bytes(b"line one\nline two\n" * 500)
    with program("b_ftp_client", hub_lab.port("ftp-put"), tmp_path, "put a.txt\n") as client:
        client.wait_for("upload successful")
        hub_lab.wait_logged(caplog, "as lab/a.txt in the sockhub files tree")
    with Client.connect(srv.address, user="alice", key=key) as hub_client:
        hub_client.get("lab/a.txt", tmp_path / "back.txt")
    assert (tmp_path / "back.txt").read_bytes() == (tmp_path / "a.txt").read_bytes()


def test_ftp_upload_outside_the_tree_is_refused_by_its_path_rules(
    hub_lab: LabThread, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="sockhub.lab")
    header = json.dumps({"cmd": "put", "filename": "..", "filesize": 3}).encode()
    with socket.create_connection(("127.0.0.1", hub_lab.port("ftp-put")), timeout=10) as s:
        s.sendall(struct.pack("i", len(header)) + header + b"abc")
        assert s.recv(10) == b""  # the lab closes after a refused upload
    hub_lab.wait_logged(caplog, "the sockhub files service refused")


def test_ftp_download_serves_the_files_tree(
    hub: tuple[RunningServer, bytes], hub_lab: LabThread, tmp_path: Path
) -> None:
    srv, key = hub
    picture = bytes(range(256)) * 40
    (tmp_path / "up.png").write_bytes(picture)
    with Client.connect(srv.address, user="alice", key=key) as hub_client:
        hub_client.put(tmp_path / "up.png", "lab/girl.png", overwrite=True)
    with program("c92_client", hub_lab.port("ftp-get"), tmp_path, "girl\n") as client:
        out = client.wait_for("new_hex")
        assert "文件已损坏" not in out
        client.end_input()
        client.finish()
    assert (tmp_path / "nb_girl.png").read_bytes() == picture


@pytest.mark.parametrize(
    ("name", "fmt", "room"),
    [("a362_chat_client", "chat", "lab"), ("a361_chat_client", "chat-plain", "lab-plain")],
)
def test_course_chat_shares_a_sockhub_room(
    hub: tuple[RunningServer, bytes],
    hub_lab: LabThread,
    tmp_path: Path,
    name: str,
    fmt: str,
    room: str,
) -> None:
    srv, _ = hub
    port = hub_lab.port(fmt)
    with (
        Client.connect(srv.address) as bob,
        program(name, port, tmp_path) as one,
        program(name, port, tmp_path) as two,
    ):
        bob.join(room, "bob")
        hub_lab.wait_members(fmt, 2)
        one.feed("hello from the course\n")
        two.wait_for("hello from the course")
        said = bob.next_chat(10)
        while getattr(said, "text", "").find("hello from the course") < 0:
            said = bob.next_chat(10)
        assert said.text.startswith("127.0.0.1:")  # type: ignore[union-attr]
        bob.say(room, "hello from sockhub")
        one.wait_for("bob hello from sockhub")
        two.wait_for("bob hello from sockhub")


def put_header(name: str, size: object) -> bytes:
    header = json.dumps({"cmd": "put", "filename": name, "filesize": size}).encode()
    return struct.pack("i", len(header)) + header


def test_ftp_upload_and_download_at_the_lab_bound(
    hub: tuple[RunningServer, bytes], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    srv, key = hub
    caplog.set_level(logging.INFO, logger="sockhub.lab")
    limits = LabLimits(max_upload=1000, max_download=999)
    with lab(
        server=srv.address, user="alice", key=key, only=("ftp-put", "ftp-get"), limits=limits
    ) as running:
        with socket.create_connection(("127.0.0.1", running.port("ftp-put")), timeout=10) as s:
            s.sendall(put_header("edge.png", 1000) + b"e" * 1000)  # the FTP homework's put
            running.wait_logged(caplog, "uploaded 1000 bytes as lab/edge.png")
            s.sendall(put_header("over.png", 1001))
            assert s.recv(10) == b""
        running.wait_logged(caplog, "announced 1001 bytes; the lab takes 0..1000")
        with socket.create_connection(("127.0.0.1", running.port("ftp-get")), timeout=10) as s:
            s.sendall(b"edge")  # 1000 bytes: one over max_download
            assert s.recv(10) == b""
        running.wait_logged(caplog, "the lab sends up to 999 (max_download)")
    with Client.connect(srv.address, user="alice", key=key) as hub_client:
        assert hub_client.stat("lab/edge.png").size == 1000
        with pytest.raises(ProtocolError):
            hub_client.stat("lab/over.png")


@pytest.mark.parametrize(
    "fmt", ["exec-len", "exec-json", "exec-json-ds", "exec-decimal", "exec-status", "exec-raw"]
)
def test_lab_check_passes_the_labs_own_exec_listeners(hub_lab: LabThread, fmt: str) -> None:
    card = asyncio.run(check(fmt, "127.0.0.1", hub_lab.port(fmt), timeout=10.0))
    verdicts = {r.probe: r.verdict for r in card.results}
    assert verdicts["basic"] == verdicts["quit"] == verdicts["reset"] == "pass", card.render()
    # the request side of these formats has no framing: two commands in one write are one
    assert verdicts["back-to-back"] == "fail"
    assert verdicts["big"] == ("warn" if fmt == "exec-raw" else "pass"), card.render()


def test_lab_reconnects_when_the_server_closed_its_connection(
    hub: tuple[RunningServer, bytes], tmp_path: Path
) -> None:
    srv, key = hub
    with lab(
        server=srv.address, user="alice", key=key, lab_exec=True, only=("exec-len",)
    ) as running:
        assert running.running is not None and running.running.lab.backend is not None
        old = running.running.lab.backend.client
        asyncio.run_coroutine_threadsafe(old.close(), running.loop).result(30)
        with program("c91_client", running.port("exec-len"), tmp_path, "echo again\n") as c:
            c.wait_for("again")
        assert running.running.lab.backend.client is not old


def test_a_command_over_the_exec_timeout_is_stopped(
    hub: tuple[RunningServer, bytes], caplog: pytest.LogCaptureFixture
) -> None:
    srv, key = hub
    caplog.set_level(logging.INFO, logger="sockhub.lab")
    limits = LabLimits(exec_timeout=0.3)
    with lab(
        server=srv.address, user="alice", key=key, lab_exec=True, only=("exec-len",), limits=limits
    ) as running:
        with socket.create_connection(("127.0.0.1", running.port("exec-len")), timeout=30) as s:
            s.sendall(b"echo early; sleep 30")
            (n,) = struct.unpack("i", s.recv(4))
            assert s.recv(n) == b"early\n"  # its output so far, with the notes' length
        running.wait_logged(caplog, "over 0.3 s (exec_timeout); it was stopped")
