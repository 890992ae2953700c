"""``sockhub exec -t`` in a real terminal (tmux): an interactive program on a remote pty.

tmux is the local terminal: keys go in with ``send-keys``, the screen comes back with
``capture-pane``, and ``resize-window`` changes its size as a user dragging a window would.
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sockhub import Client
from sockhub.client.exec import Output

from .conftest import RunningServer, running_server
from .test_chat_tui import Terminal

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux (make sysdeps)")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[RunningServer, str]]:
    with running_server(tmp_path / "data", exec=True, exec_kill_grace=0.3) as srv:
        key = base64.b64encode(srv.add_user("alice", ("exec",))).decode()
        yield srv, key


@contextlib.contextmanager
def exec_terminal(srv: RunningServer, key: str, *args: str) -> Iterator[Terminal]:
    command = [sys.executable, "-m", "sockhub", "exec", "-s", srv.address, "-u", "alice"]
    term = Terminal(["env", f"SOCKHUB_KEY={key}", *command, *args])
    try:
        yield term
    finally:
        term.close()


def test_a_remote_shell_gets_a_terminal_its_size_and_its_status(
    server: tuple[RunningServer, str],
) -> None:
    srv, key = server
    with exec_terminal(srv, key, "-e", "PS1=ready> ", "--", "sh") as term:  # a pty by itself
        term.wait_for("ready> ")
        term.type("tty; stty size\r")
        term.wait_for("30 100")
        # a pty: /dev/pts/N, or /dev/console inside the sandbox (bubblewrap's name for it)
        assert "not a tty" not in term.screen()
        term.tmux("resize-window", "-t", "0", "-x", "90", "-y", "25")
        term.type("stty size\r")
        term.wait_for("25 90")
        term.type("exit 5\r")
        term.wait_for("[exit 5]")


def test_an_interactive_program_reads_keys_and_ctrl_c_reaches_it(
    server: tuple[RunningServer, str],
) -> None:
    srv, key = server
    with exec_terminal(srv, key, "-t", "--", "python3", "-q") as term:
        term.wait_for(">>>")
        term.type("print(6 * 7)\r")
        term.wait_for("42")
        term.type("import time; time.sleep(60)\r")
        term.keys("C-c")  # raw mode: the byte goes over, the remote line discipline signals
        term.wait_for("KeyboardInterrupt")
        term.type("raise SystemExit(4)\r")
        term.wait_for("[exit 4]")


def test_the_pty_op_from_python(server: tuple[RunningServer, str]) -> None:
    srv, key = server
    with Client.connect(srv.address, user="alice", key=base64.b64decode(key)) as c:
        proc = c.open_process("stty size; read x; echo got $x", pty={"cols": 50, "rows": 7})
        outputs = iter(proc)
        seen = b""
        while b"7 50" not in seen:
            out = next(outputs)
            assert isinstance(out, Output) and out.stream == "stdout"
            seen += out.data
        proc.resize(60, 9)
        proc.write(b"yes\r")
        rest = b"".join(o.data for o in outputs)
        assert b"got yes" in rest
        assert proc.result is not None and proc.result.status == 0


def test_signals_sent_to_exec_reach_the_remote_program(server: tuple[RunningServer, str]) -> None:
    srv, key = server
    leader, follower = os.openpty()  # stdin and stdout a terminal: a pty without -t
    script = 'trap "echo got TERM; exit 7" TERM; echo ready; while :; do sleep 0.05; done'
    proc = subprocess.Popen(
        [sys.executable, "-m", "sockhub", "exec", "-s", srv.address, "-u", "alice", "--", script],
        stdin=follower,
        stdout=follower,
        stderr=follower,
        env={**os.environ, "SOCKHUB_KEY": key},
    )
    os.close(follower)
    seen = b""
    try:
        while b"ready" not in seen:
            try:
                seen += os.read(leader, 4096)
            except OSError:
                raise AssertionError(seen) from None
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 7  # the remote status, passed through
        with contextlib.suppress(OSError):
            while chunk := os.read(leader, 4096):
                seen += chunk
        assert b"got TERM" in seen
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(leader)
