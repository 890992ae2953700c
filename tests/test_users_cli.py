"""`sockhub user`: changes under a lock are never lost, grant/rekey, keys written 0600."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import pytest

from sockhub import Client
from sockhub.client import read_key
from sockhub.protocol.errors import AuthFailed, AuthRequired

from .conftest import RunningServer

SOCKHUB = [sys.executable, "-m", "sockhub"]


def user_cmd(data: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*SOCKHUB, "user", *args, "--data", str(data)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )


def run_user(data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    proc = user_cmd(data, *args)
    out, err = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def finish(procs: list[subprocess.Popen[str]]) -> list[int]:
    for p in procs:
        p.communicate(timeout=120)
    return [p.returncode for p in procs]


def names(data: Path) -> set[str]:
    return set(json.loads((data / "users.json").read_text()))


def test_parallel_adds_all_land(tmp_path: Path) -> None:
    procs = [user_cmd(tmp_path, "add", f"u{i}", "--grant", "chat") for i in range(10)]
    assert finish(procs) == [0] * 10
    assert names(tmp_path) == {f"u{i}" for i in range(10)}
    assert (tmp_path / "users.json").stat().st_mode & 0o777 == 0o600


def test_a_remove_is_never_undone_by_concurrent_adds(tmp_path: Path) -> None:
    assert finish([user_cmd(tmp_path, "add", "victim")]) == [0]
    procs = [user_cmd(tmp_path, "add", f"a{i}") for i in range(4)]
    procs.insert(2, user_cmd(tmp_path, "remove", "victim"))
    procs += [user_cmd(tmp_path, "add", f"b{i}") for i in range(4)]
    assert finish(procs) == [0] * 9
    assert names(tmp_path) == {f"a{i}" for i in range(4)} | {f"b{i}" for i in range(4)}


def test_key_out_is_0600_and_never_overwritten_without_force(tmp_path: Path) -> None:
    data, key_file = tmp_path / "data", tmp_path / "alice.key"
    add = run_user(data, "add", "alice", "--key-out", str(key_file))
    assert add.returncode == 0 and add.stdout == "" and str(key_file) in add.stderr
    assert key_file.stat().st_mode & 0o777 == 0o600
    first = read_key(key_file)
    assert first is not None and len(first) == 32
    again = run_user(data, "add", "bob", "--key-out", str(key_file))
    assert again.returncode == 2 and "--force" in again.stderr
    assert read_key(key_file) == first and names(data) == {"alice"}  # nothing changed
    rekey = run_user(data, "rekey", "alice", "--key-out", str(key_file), "--force")
    assert rekey.returncode == 0
    assert read_key(key_file) not in (None, first)
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".alice.key")]


def test_grant_and_rekey_apply_to_new_logins(srv: RunningServer, tmp_path: Path) -> None:
    key_file = tmp_path / "kim.key"
    assert finish([user_cmd(srv.data, "add", "kim", "--key-out", str(key_file))]) == [0]
    key = read_key(key_file)
    with Client.connect(srv.address, user="kim", key=key) as c, pytest.raises(AuthRequired):
        c.list("")
    assert finish([user_cmd(srv.data, "grant", "kim", "chat,files")]) == [0]
    with Client.connect(srv.address, user="kim", key=key) as c:
        assert c.list("") == []
    rekey = user_cmd(srv.data, "rekey", "kim")
    out, _ = rekey.communicate(timeout=60)
    assert rekey.returncode == 0
    with pytest.raises(AuthFailed):
        Client.connect(srv.address, user="kim", key=key)
    with Client.connect(srv.address, user="kim", key=read_key_text(out)) as c:
        assert c.list("") == []
    assert finish([user_cmd(srv.data, "grant", "kim", "root")]) == [2]
    assert finish([user_cmd(srv.data, "rekey", "nobody")]) == [2]


def read_key_text(text: str) -> bytes:
    return base64.b64decode(text.strip(), validate=True)
