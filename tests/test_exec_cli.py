"""``sockhub exec`` as a user runs it: a real process against a real server."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import RunningServer, running_server

SOCKHUB = [sys.executable, "-m", "sockhub"]


class Cli:
    def __init__(self, srv: RunningServer, key: bytes) -> None:
        self.env = {
            **os.environ,
            "SOCKHUB_SERVER": srv.address,
            "SOCKHUB_USER": "alice",
            "SOCKHUB_KEY": base64.b64encode(key).decode(),
        }

    def run(self, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [*SOCKHUB, "exec", *args],
            input=stdin,
            stdin=None if stdin is not None else subprocess.DEVNULL,
            capture_output=True,
            timeout=60,
            env=self.env,
        )


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[Cli]:
    with running_server(tmp_path / "data", exec=True, exec_kill_grace=0.3) as srv:
        yield Cli(srv, srv.add_user("alice", ("exec",)))


def test_output_streams_and_status_passes_through(cli: Cli) -> None:
    done = cli.run("--", "echo out; echo err >&2; exit 7")
    assert (done.returncode, done.stdout, done.stderr) == (7, b"out\n", b"err\n")
    assert cli.run("--", "true").returncode == 0
    argv = cli.run("printf", "%s|", "a b", "*")  # several words: no shell, no `--` needed
    assert argv.stdout == b"a b|*|"


def test_signals_are_128_plus_n_and_timeouts_say_so(cli: Cli) -> None:
    assert cli.run("--", "kill -TERM $$").returncode == 128 + signal.SIGTERM
    timed = cli.run("--timeout", "0.3", "--", "sleep", "60")
    assert timed.returncode == 128 + signal.SIGTERM
    assert b"timed out" in timed.stderr


def test_stdin_is_forwarded_when_not_a_terminal(cli: Cli) -> None:
    data = os.urandom(3 * 1024 * 1024)
    assert cli.run("--", "tr a-z A-Z", stdin=b"hello\n").stdout == b"HELLO\n"
    assert cli.run("--", "cat", stdin=data).stdout == data
    assert cli.run("--", "cat").stdout == b""  # /dev/null: EOF at once


def test_cwd_and_env(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "data" / "exec" / "sub").mkdir()
    done = cli.run("--cwd", "sub", "-e", "GREETING=hi there", "--", 'echo "$GREETING"; pwd')
    lines = done.stdout.decode().splitlines()
    assert lines[0] == "hi there" and lines[1].endswith("/exec/sub")
    assert cli.run("--cwd", "../..", "--", "pwd").returncode == 255
    assert cli.run("-e", "NOEQUALS", "--", "true").returncode == 2


def test_json_prints_one_result(cli: Cli) -> None:
    done = cli.run("--json", "--", "echo hi; echo oops >&2; exit 3")
    assert done.returncode == 3
    result = json.loads(done.stdout)
    assert result == {
        "ok": False,
        "status": 3,
        "signal": None,
        "timed_out": False,
        "truncated": False,
        "elapsed": result["elapsed"],
        "stdout": "hi\n",
        "stderr": "oops\n",
    }


def test_own_failures_are_255(cli: Cli, srv: RunningServer) -> None:
    cli.env.pop("SOCKHUB_USER")
    cli.env.pop("SOCKHUB_KEY")
    refused = cli.run("--", "true")
    assert refused.returncode == 255 and b"auth.required" in refused.stderr
    cli.env["SOCKHUB_SERVER"] = srv.address  # exec is off on this one
    disabled = cli.run("--json", "--", "true")
    assert disabled.returncode == 255
    assert json.loads(disabled.stdout)["error"] == "exec.disabled"
    cli.env["SOCKHUB_SERVER"] = "127.0.0.1:1"
    assert cli.run("--", "true").returncode == 255
    assert cli.run().returncode == 2  # no command: usage


def test_ctrl_c_is_sent_as_int(cli: Cli) -> None:
    proc = subprocess.Popen(
        [
            *SOCKHUB,
            "exec",
            "--",
            "trap 'echo got INT; exit 5' INT; echo ready; while :; do sleep 0.05; done",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        env=cli.env,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"ready\n"
    proc.send_signal(signal.SIGINT)
    assert proc.stdout.readline() == b"got INT\n"
    assert proc.wait(timeout=30) == 5
