"""Habits users bring from other tools: ``-`` for stdin, sizes with units, misspelt
variables named, the README's exit codes, and a Ctrl-C that stops ``talk`` at once."""

from __future__ import annotations

import base64
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from sockhub.cli.environment import parse_size, unknown_variables

from .conftest import RunningServer
from .files_support import USER, files_server
from .test_chat_tui import Terminal

SOCKHUB = [sys.executable, "-m", "sockhub"]


def sockhub(
    *args: str, env: dict[str, str] | None = None, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SOCKHUB_")}
    return subprocess.run(
        [*SOCKHUB, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env={**clean, **(env or {})},
    )


def test_echo_dash_reads_stdin(srv: RunningServer) -> None:
    done = sockhub("echo", "-s", srv.address, "-", stdin="from a pipe\nline two\n")
    assert done.returncode == 0 and done.stdout == "from a pipe\nline two\n\n"


def test_sizes_take_units() -> None:
    assert parse_size("1G") == str(1024**3)
    assert parse_size("512k") == "524288"
    assert parse_size("1.5MiB") == str(3 * 512 * 1024)
    assert parse_size("64MB") == str(64 * 1024**2)
    assert parse_size("100") == "100" and parse_size("lots") == "lots"


def test_serve_takes_a_quota_with_a_unit_and_refuses_unknown_variables(tmp_path: Path) -> None:
    data = ["--data", str(tmp_path), "--port", "0", "--no-udp"]
    bad = sockhub("serve", *data, "--limit", "file_quota=1Q")
    assert bad.returncode == 2 and "file_quota" in bad.stderr
    typo = sockhub("serve", *data, env={"SOCKHUB_LIMIT_FILE_QUOTE": "1G"})
    assert typo.returncode == 2
    assert "SOCKHUB_LIMIT_FILE_QUOTE (did you mean SOCKHUB_LIMIT_FILE_QUOTA?)" in typo.stderr
    serve = subprocess.Popen(
        [*SOCKHUB, "serve", *data, "--limit", "file_quota=1G"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert serve.stdout is not None
        assert serve.stdout.readline().startswith("sockhub ")  # it started: the unit was taken
    finally:
        serve.terminate()
        serve.wait(timeout=30)


def test_client_commands_warn_about_unknown_variables(srv: RunningServer) -> None:
    done = sockhub("echo", "hi", env={"SOCKHUB_SERVR": "x", "SOCKHUB_SERVER": srv.address})
    assert done.returncode == 0 and done.stdout == "hi\n"
    assert "ignoring unknown variable SOCKHUB_SERVR (did you mean SOCKHUB_SERVER?)" in done.stderr
    assert unknown_variables({"SOCKHUB_LIMIT_MAX_BODY": "1", "SOCKHUB_KEY": "k"}) == []


def test_exit_codes_are_the_readmes(tmp_path: Path) -> None:
    with files_server(tmp_path / "data") as (srv, key):
        env = {"SOCKHUB_SERVER": srv.address, "SOCKHUB_USER": USER}
        env["SOCKHUB_KEY"] = base64.b64encode(key).decode()
        assert sockhub("put", str(tmp_path / "missing"), env=env).returncode == 1
        anonymous = sockhub("ls", env={"SOCKHUB_SERVER": srv.address})
        assert anonymous.returncode == 3 and "--user" in anonymous.stderr  # a missing grant
        assert sockhub("ls", "--bogus", env=env).returncode == 2
        assert sockhub("echo", "-s", "127.0.0.1:1", "x").returncode == 3
        assert sockhub("ls", env=env).returncode == 0


@pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux (make sysdeps)")
def test_the_first_ctrl_c_stops_talk_at_once() -> None:
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # a peer that never answers
    silent.bind(("127.0.0.1", 0))
    port = silent.getsockname()[1]
    term = Terminal([*SOCKHUB, "talk", "--listen", "127.0.0.1:0", "--to", f"127.0.0.1:{port}"])
    try:
        term.wait_for(f"127.0.0.1:{port}>")  # the prompt: the terminal is in raw mode
        term.type("anyone there?\r")
        term.keys("C-c")
        screen = term.wait_for("[exit 130]")
        assert "1 message not confirmed" in screen and "NOT delivered" not in screen
    finally:
        term.close()
        silent.close()
