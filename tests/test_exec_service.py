"""exec over the wire: who may run, what runs, and what comes back (PROTOCOL.md section 8)."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from sockhub import AsyncClient, Client
from sockhub.client.exec import RemoteProcessError
from sockhub.protocol.errors import AuthRequired, BadRequest, ExecDisabled, ExecNoSuchRun

from .conftest import RawPeer, RunningServer, running_server


class Exec:
    """A server with exec on, and a user allowed to use it."""

    def __init__(self, srv: RunningServer) -> None:
        self.srv = srv
        self.key = srv.add_user("alice", ("exec",))
        self.root = srv.data / "exec"

    def client(self) -> Client:
        return Client.connect(self.srv.address, user="alice", key=self.key)

    async def aclient(self) -> AsyncClient:
        return await AsyncClient.connect(self.srv.address, user="alice", key=self.key)


@pytest.fixture
def ex(tmp_path: Path) -> Iterator[Exec]:
    with running_server(tmp_path / "data", exec=True, exec_kill_grace=0.5) as srv:
        yield Exec(srv)


# who may run ---------------------------------------------------------------------------


def test_off_by_default(srv: RunningServer) -> None:
    key = srv.add_user("alice", ("exec",))
    with Client.connect(srv.address, user="alice", key=key) as c:
        assert "exec" not in c.hello.services
        with pytest.raises(ExecDisabled):
            c.run("true")
    with Client.connect(srv.address) as c, pytest.raises(ExecDisabled):
        c.run("true")


def test_anonymous_and_ungranted_users_are_refused(ex: Exec) -> None:
    other = ex.srv.add_user("bob", ("chat", "files"))
    with Client.connect(ex.srv.address) as c:
        assert "exec" in c.hello.services
        with pytest.raises(AuthRequired):
            c.run("true")
    with Client.connect(ex.srv.address, user="bob", key=other) as c, pytest.raises(AuthRequired):
        c.run(["true"])


# what runs and what comes back -----------------------------------------------------------


def test_stdout_stderr_and_status(ex: Exec) -> None:
    with ex.client() as c:
        r = c.run("echo out; echo err >&2; exit 3")
        assert (r.stdout, r.stderr, r.status, r.signal) == (b"out\n", b"err\n", 3, None)
        assert not r.timed_out and not r.truncated and r.elapsed >= 0
        assert r.returncode == 3 and r.exit_code == 3 and not r.ok
        killed = c.run("kill -KILL $$")
        assert (killed.status, killed.signal, killed.exit_code) == (None, "KILL", 137)
        assert c.run("true").ok


def test_check_raises_with_the_result(ex: Exec) -> None:
    with ex.client() as c:
        with pytest.raises(RemoteProcessError) as info:
            c.run("echo partial; exit 4", check=True)
        assert info.value.status == 4 and info.value.stdout == b"partial\n"
        assert c.run("echo fine", check=True).stdout == b"fine\n"


def test_argv_runs_without_a_shell(ex: Exec) -> None:
    literal = ["$HOME", "*", ";", "|", "`id`", "$(id)", "a b", "'q'"]
    with ex.client() as c:
        r = c.run(["printf", "%s\\n", *literal])
        assert r.stdout.decode().splitlines() == literal


def test_programs_that_cannot_run(ex: Exec) -> None:
    (ex.root / "notexec").write_text("#!/bin/sh\necho hi\n")
    with ex.client() as c:
        missing = c.run(["no-such-program-here"])
        assert missing.status == 127 and b"no-such-program-here" in missing.stderr
        denied = c.run(["./notexec"])
        assert denied.status == 126
        assert c.run("no-such-program-here").status == 127  # the shell says the same


async def test_output_streams_before_the_process_ends(ex: Exec) -> None:
    """The command cannot end until we answer the line it printed: output must arrive first."""
    async with await ex.aclient() as c:
        proc = c.open_process("echo first; read reply; echo got $reply", stdin=True)
        outputs = aiter(proc)
        first = await anext(outputs)
        assert (first.stream, first.data) == ("stdout", b"first\n")
        await proc.write(b"yes\n")
        second = await anext(outputs)
        assert second.data == b"got yes\n"
        result = await proc.wait()
        assert result.status == 0 and result.stdout == b""  # what we iterated is not kept twice


def test_sync_streaming_form(ex: Exec) -> None:
    with ex.client() as c:
        proc = c.open_process("echo one; read x; echo $x >&2", stdin=True)
        outputs = iter(proc)
        assert next(outputs).data == b"one\n"
        proc.write("two\n")
        proc.close_stdin()
        assert next(outputs).data == b"two\n"
        assert proc.wait().status == 0


def test_20_mb_of_output_intact(ex: Exec) -> None:
    data = os.urandom(20 * 1024 * 1024)
    (ex.root / "big.bin").write_bytes(data)
    with ex.client() as c:
        r = c.run("cat big.bin; cat big.bin >&2")
        assert r.status == 0 and not r.truncated
        assert hashlib.sha256(r.stdout).digest() == hashlib.sha256(data).digest()
        assert r.stderr == data


async def test_20_mb_of_output_intact_async(ex: Exec) -> None:
    data = os.urandom(20 * 1024 * 1024)
    (ex.root / "big.bin").write_bytes(data)
    async with await ex.aclient() as c:
        r = await c.run(["cat", "big.bin"])
        assert r.stdout == data


def test_stdin_sync_big_input_does_not_deadlock(ex: Exec) -> None:
    """cat echoes 8 MB back while we still send: the client must read as it writes."""
    data = os.urandom(8 * 1024 * 1024)
    with ex.client() as c:
        r = c.run("cat", input=data)
        assert r.stdout == data
        assert c.run(["wc", "-c"], input="héllo").stdout.split() == [b"6"]
        assert c.run("cat", input=b"").stdout == b""


async def test_stdin_async_big_input(ex: Exec) -> None:
    data = os.urandom(8 * 1024 * 1024)
    async with await ex.aclient() as c:
        r = await c.run("cat; echo done >&2", input=data)
        assert r.stdout == data and r.stderr == b"done\n"


async def test_input_to_a_command_that_does_not_read_is_dropped(ex: Exec) -> None:
    async with await ex.aclient() as c:
        r = await c.run("true", input=os.urandom(4 * 1024 * 1024))
        assert r.status == 0
        assert (await c.run("echo still here")).stdout == b"still here\n"
    with ex.client() as s:
        assert s.run("exit 0", input=os.urandom(4 * 1024 * 1024)).status == 0


def test_environment_is_clean(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOCKHUB_SECRET_TOKEN", "leak")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "leak")
    monkeypatch.setenv("SOCKHUB_KEY", "leak")
    with running_server(tmp_path / "data", exec=True) as srv:
        key = srv.add_user("alice", ("exec",))
        with Client.connect(srv.address, user="alice", key=key) as c:
            env = dict(
                line.split("=", 1)
                for line in c.run(["env"], env={"MINE": "x=1"}).stdout.decode().splitlines()
            )
    assert "leak" not in env.values()
    assert not [k for k in env if k.startswith("SOCKHUB")]
    assert set(env) == {"PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "PWD", "MINE"}
    assert env["MINE"] == "x=1"
    assert Path(env["PWD"]) == (srv.data / "exec").resolve()


def test_cwd_inside_the_root_and_escapes_refused(ex: Exec, tmp_path: Path) -> None:
    (ex.root / "sub" / "deeper").mkdir(parents=True)
    (ex.root / "file").write_text("")
    outside = tmp_path / "outside"
    outside.mkdir()
    (ex.root / "link").symlink_to(outside)
    (ex.root / "sub" / "inner").symlink_to(ex.root / "sub" / "deeper")
    with ex.client() as c:
        assert c.run("pwd", cwd="sub/deeper").stdout.decode().strip() == str(
            (ex.root / "sub" / "deeper").resolve()
        )
        assert c.run("pwd", cwd="sub/inner").status == 0  # a link that stays inside is fine
        for bad in [
            "..",
            "../x",
            "/etc",
            "sub/../..",
            "sub//deeper",
            "./sub",
            "sub/",
            "a\\b",
            "a\x01",
            "link",
            "link/x",
            "nope",
            "file",
            "x" * 256,
        ]:
            with pytest.raises(BadRequest):
                c.run("pwd", cwd=bad)
        assert c.run("true").ok  # the connection is fine after all that


async def test_bad_requests_name_the_field(ex: Exec) -> None:
    async with await ex.aclient() as c:
        cases = [
            ({}, "cmd"),
            ({"cmd": "true", "argv": ["true"]}, "cmd"),
            ({"cmd": ""}, "cmd"),
            ({"cmd": 5}, "cmd"),
            ({"argv": []}, "argv"),
            ({"argv": ["echo", 1]}, "argv"),
            ({"argv": ["echo", "a\x00b"]}, "argv"),
            ({"cmd": "true", "timeout": 0}, "timeout"),
            ({"cmd": "true", "timeout": "5"}, "timeout"),
            ({"cmd": "true", "env": {"A=B": "x"}}, "env"),
            ({"cmd": "true", "env": {"A": 1}}, "env"),
            ({"cmd": "true", "stdin": "yes"}, "stdin"),
            ({"cmd": "true", "cwd": 3}, "cwd"),
        ]
        for fields, name in cases:
            with pytest.raises(BadRequest, match=name):
                await c.request("exec.run", **fields)


def test_in_and_kill_errors_carry_the_target(ex: Exec) -> None:
    peer = RawPeer(ex.srv.port)
    with ex.client() as c:
        assert c.run("true").ok
    # anonymous first: exec.in needs the grant too
    peer.request({"op": "exec.in", "target": 5, "size": 0})
    err = peer.frame()
    assert err.header["code"] == "auth.required"
    peer.close()
    with ex.client() as c:
        proc = c.open_process("sleep 30")
        c.send("exec.in", b"x", target=proc.id)  # started without stdin
        with pytest.raises(BadRequest, match="stdin"):
            proc.wait()
        c.send("exec.kill", target=proc.id, signal="NOPE")
        c.send("exec.kill", target=proc.id, signal="KILL")
        with pytest.raises(ExecNoSuchRun):
            c.request("exec.kill", target=999_999, signal="TERM")
        with pytest.raises(BadRequest, match="target"):
            c.request("exec.kill", signal="TERM")


def test_kill_sends_the_signal_to_the_group(ex: Exec) -> None:
    with ex.client() as c:
        proc = c.open_process(
            "trap 'echo got INT; exit 9' INT; echo ready; while :; do sleep 0.05; done"
        )
        outputs = iter(proc)
        assert next(outputs).data == b"ready\n"
        proc.kill("INT")
        assert next(outputs).data == b"got INT\n"
        assert proc.wait().status == 9
        killed = c.open_process(["sleep", "30"])
        killed.kill("KILL")
        result = killed.wait()
        assert (result.status, result.signal, result.timed_out) == (None, "KILL", False)
        assert c.run("true").ok


def test_big_input_over_tls_both_clients(tmp_path: Path) -> None:
    """The blocking client interleaves writing and reading on a TLS socket too."""
    data = os.urandom(6 * 1024 * 1024)
    known = str(tmp_path / "known_hosts")
    with running_server(tmp_path / "data", exec=True, tls=True) as srv:
        key = srv.add_user("alice", ("exec",))
        with Client.connect(srv.address, user="alice", key=key, tls=True, known_hosts=known) as c:
            assert c.run("cat", input=data).stdout == data

        async def run_async() -> bytes:
            async with await AsyncClient.connect(
                srv.address, user="alice", key=key, tls=True, known_hosts=known
            ) as c:
                return (await c.run("cat", input=data)).stdout

        assert asyncio.run(run_async()) == data
