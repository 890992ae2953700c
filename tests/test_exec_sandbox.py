"""exec in its sandbox: a command sees neither the server's secrets nor its processes.

The attack of the issue: a user with only the exec grant reads the server's environment
through ``/proc/$PPID/environ`` and ``users.json`` from the data folder, then logs in as
anyone. These tests run that attack as the server's own user (root here) and as an
unprivileged one (``setpriv`` to nobody when the tests run as root).
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from sockhub import Client
from sockhub.server import ConfigError
from sockhub.server.users import UserStore

from .conftest import running_server

SECRET = "s3cret-of-the-server-process"
ATTACK = (
    "cat /proc/$PPID/environ; for f in /proc/[0-9]*/environ; do cat $f; done; "
    "cat {data}/users.json; ls -a {data}; ls /proc | grep -c '^[0-9]'; "
    "echo mine > here.txt; cat here.txt"
)
NOBODY = 65534
SERVE = [sys.executable, "-m", "sockhub", "serve", "--port", "0", "--exec"]


def _looks_isolated(out: bytes, data: Path, key: bytes) -> None:
    assert SECRET.encode() not in out
    assert base64.b64encode(key) not in out and b'"grants"' not in out
    assert b"users.json" not in out
    assert out.endswith(b"mine\n")


def test_a_command_sees_no_secret_of_the_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SERVER_SECRET_TOKEN", SECRET)
    data = tmp_path / "data"
    with running_server(data, exec=True, exec_root=tmp_path) as srv:  # data inside the root
        key = srv.add_user("alice", ("exec",))
        with Client.connect(srv.address, user="alice", key=key) as c:
            r = c.run(ATTACK.format(data=data))
            pids = int(re.findall(rb"^(\d+)$", r.stdout, re.M)[-1])
            assert pids <= 4  # bwrap's init, sh, ls, grep: not the server or anyone else
            _looks_isolated(r.stdout, data, key)
            assert (tmp_path / "here.txt").read_text() == "mine\n"  # the root is writable
            who = c.run("ls /home /root /etc/shadow 2>&1; env | grep -c SOCKHUB").stdout
            assert b"No such file" in who and who.endswith(b"0\n")


def test_a_background_process_ends_with_its_run_even_after_setsid(tmp_path: Path) -> None:
    """In the sandbox's PID namespace nothing escapes: not even a process that left the group."""
    marker = "987.654321"
    with running_server(tmp_path / "data", exec=True, exec_kill_grace=0.3) as srv:
        key = srv.add_user("alice", ("exec",))
        with Client.connect(srv.address, user="alice", key=key) as c:
            r = c.run(f"setsid sleep {marker} & sleep {marker}x & echo started")
            assert (r.status, r.stdout) == (0, b"started\n")
            srv.wait_until(lambda: not _running(marker))
            timed = c.run("trap 'exit 7' TERM; echo ready; while :; do sleep 0.05; done", timeout=1)
            assert (timed.status, timed.timed_out) == (7, True)  # caught TERM, kept its status
            assert c.run("kill -TERM $$").signal == "TERM"


def _running(marker: str) -> bool:
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if marker.encode() in Path(f"/proc/{entry}/cmdline").read_bytes():
                    return True
            except OSError:
                continue
    return False


def test_no_sandbox_refuses_exec_unless_told(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no bwrap to be found
    with pytest.raises(ConfigError, match="--exec-unsandboxed"):
        with running_server(tmp_path / "data", exec=True):
            pass
    with running_server(tmp_path / "data", exec=True, exec_unsandboxed=True) as srv:
        key = srv.add_user("alice", ("exec",))
        with Client.connect(srv.address, user="alice", key=key) as c:
            assert c.run(["/bin/echo", "unsandboxed"]).stdout == b"unsandboxed\n"


def test_the_cli_says_why_it_refuses(tmp_path: Path) -> None:
    serve = subprocess.run(
        [*SERVE, "--data", str(tmp_path), "--no-udp"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PATH": str(tmp_path)},
        stdin=subprocess.DEVNULL,
    )
    assert serve.returncode == 2
    assert "bubblewrap" in serve.stderr and "--exec-unsandboxed" in serve.stderr


@pytest.fixture
def open_folder() -> Iterator[Path]:
    """A data folder an unprivileged server can reach (pytest's tmp_path is root's 0700)."""
    folder = Path(tempfile.mkdtemp(prefix="sockhub-nobody-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder)


DROP = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]


def _as_nobody(folder: Path) -> tuple[list[str], dict[str, str]]:
    """A command line and environment that start ``sockhub`` as nobody.

    The checkout and its .venv may lie under a folder only root can enter (a clone in
    ``mktemp -d``), so the server's packages are copied into ``folder`` and run by the
    first interpreter of this Python version that nobody can start.
    """
    import h11
    import msgspec
    import websockets

    import sockhub

    lib = folder / "lib"
    for package in (sockhub, msgspec, websockets, h11):
        source = Path(package.__file__ or "").parent
        shutil.copytree(source, lib / package.__name__, ignore=shutil.ignore_patterns("*.pyc"))
    for path in (lib, *lib.rglob("*")):
        path.chmod(0o755 if path.is_dir() else 0o644)
    env = {**os.environ, "PYTHONPATH": str(lib)}
    version = f"import sys; assert sys.version_info[:2] == {sys.version_info[:2]}; import msgspec"
    for python in (sys.executable, getattr(sys, "_base_executable", ""), "/usr/bin/python3"):
        probe = subprocess.run(
            [*DROP, python, "-c", version], env=env, capture_output=True, cwd=folder, check=False
        )
        if python and probe.returncode == 0:
            return [*DROP, python, *SERVE[1:]], env
    raise AssertionError(f"no Python {sys.version_info[:2]} that nobody can run")


def test_the_sandbox_holds_for_an_unprivileged_server(open_folder: Path) -> None:
    data = open_folder / "data"
    key = UserStore(data).add("alice", ("exec",))
    command, env = SERVE, dict(os.environ)
    if os.geteuid() == 0:
        for path in (data, *data.iterdir()):
            os.chown(path, NOBODY, NOBODY)
        command, env = _as_nobody(open_folder)
    proc = subprocess.Popen(
        [*command, "--data", str(data), "--no-udp", "--log-level", "warning"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        cwd=open_folder,
        env={**env, "SERVER_SECRET_TOKEN": SECRET},
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(2)]
        found = re.search(r"tcp\s+127\.0\.0\.1:(\d+)", lines[1])
        if not found:  # it ended (stdout closed): say why
            raise AssertionError((lines, proc.communicate(timeout=30)[1]))
        with Client.connect(f"127.0.0.1:{found.group(1)}", user="alice", key=key) as c:
            r = c.run(ATTACK.format(data=data))
        _looks_isolated(r.stdout, data, key)
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
