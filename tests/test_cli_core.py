"""The command line of the core: serve (as a real process), user, echo, time, exit codes."""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from sockhub import Client
from sockhub.cli.main import build_parser, main
from sockhub.protocol.errors import ServerShuttingDown

from .conftest import RunningServer

SOCKHUB = [sys.executable, "-m", "sockhub"]


def run_cli(
    *args: str, env: dict[str, str] | None = None, data: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SOCKHUB, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
        cwd=data,
    )


def test_every_command_teaches_by_example() -> None:
    parser = build_parser()
    actions = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"]
    commands = actions[0].choices  # type: ignore[attr-defined]
    assert {"serve", "user", "echo", "time"} <= set(commands)
    for name, sub in commands.items():
        assert "examples:" in sub.format_help(), name
    assert run_cli("--help").stdout.count("sockhub") > 3
    assert run_cli().returncode == 2


def test_user_add_prints_the_key_alone_and_stores_it_0600(tmp_path: Path) -> None:
    added = run_cli("user", "add", "alice", "--grant", "chat,files", "--data", str(tmp_path))
    assert added.returncode == 0
    key = base64.b64decode(added.stdout.strip(), validate=True)
    assert len(key) == 32 and added.stdout.count("\n") == 1
    assert (tmp_path / "users.json").stat().st_mode & 0o777 == 0o600
    listed = run_cli("user", "list", "--json", "--data", str(tmp_path))
    assert json.loads(listed.stdout) == {"user": "alice", "grants": ["chat", "files"]}
    assert run_cli("user", "add", "alice", "--data", str(tmp_path)).returncode == 2
    assert run_cli("user", "add", "bad name", "--data", str(tmp_path)).returncode == 2
    assert run_cli("user", "add", "x", "--grant", "root", "--data", str(tmp_path)).returncode == 2
    assert run_cli("user", "remove", "alice", "--data", str(tmp_path)).returncode == 0
    assert run_cli("user", "remove", "alice", "--data", str(tmp_path)).returncode == 1


def test_echo_time_json_and_exit_codes(
    srv: RunningServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["echo", "-s", srv.address, "--json", "hi", "there"]) == 0
    assert json.loads(capsys.readouterr().out) == {"ok": True, "text": "hi there", "size": 8}
    assert main(["time", "-s", srv.address, "--utc", "--format", "%Y"]) == 0
    assert re.fullmatch(r"\d{4}\n", capsys.readouterr().out)
    assert main(["echo", "-s", srv.address, "--upper", "--json", "\x1b[2J"]) == 0
    assert main(["time", "-s", srv.address, "--format", "\x00"]) == 1  # bad.request
    assert "bad.request" in capsys.readouterr().err
    assert main(["echo", "-s", "127.0.0.1:1", "x"]) == 3  # nothing listens there
    assert main(["echo", "-s", "not a port:x", "x"]) == 2


def test_echo_escapes_terminal_control(
    srv: RunningServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["echo", "-s", srv.address, "\x1b[31mred"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\\x1b[31mred" in out


def test_authenticated_cli_reads_key_from_env_or_file(srv: RunningServer, tmp_path: Path) -> None:
    key = base64.b64encode(srv.add_user("kim")).decode()
    env = {"SOCKHUB_KEY": key, "SOCKHUB_USER": "kim", "SOCKHUB_SERVER": srv.address}
    assert run_cli("echo", "hello", env=env).stdout == "hello\n"
    keyfile = tmp_path / "kim.key"
    keyfile.write_text(key + "\n")
    ok = run_cli("echo", "--user", "kim", "--key-file", str(keyfile), "-s", srv.address, "x")
    assert ok.returncode == 0
    bad = run_cli("echo", "hi", env={**env, "SOCKHUB_KEY": base64.b64encode(bytes(32)).decode()})
    assert bad.returncode == 3 and "auth" in bad.stderr


def test_serve_banner_and_graceful_sigterm(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [*SOCKHUB, "serve", "--port", "0", "--data", str(tmp_path), "--log-level", "warning"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(4)]
        assert lines[0].startswith("sockhub ") and "echo" in lines[0]
        port = int(re.search(r"tcp\s+127\.0\.0\.1:(\d+)", lines[1]).group(1))  # type: ignore[union-attr]
        page = re.search(r"web\s+(http://127\.0\.0\.1:\d+/)", lines[3])
        assert page is not None, lines  # the page's URL, on a port of its own
        assert urllib.request.urlopen(page.group(1), timeout=10).status == 200
        client = Client.connect(f"127.0.0.1:{port}")
        assert client.ping() >= 0
        proc.send_signal(signal.SIGTERM)
        with pytest.raises(ServerShuttingDown) as info:
            client.next_push(timeout=10)
        assert info.value.fatal
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_serve_refuses_bad_config(tmp_path: Path) -> None:
    conf = tmp_path / "bad.toml"
    conf.write_text("prot = 1\n")
    result = run_cli("serve", "--config", str(conf), "--data", str(tmp_path))
    assert result.returncode == 2 and "unknown key(s) prot" in result.stderr
    result = run_cli("serve", "--limit", "idle_timeout=-1", "--data", str(tmp_path))
    assert result.returncode == 2 and "idle_timeout" in result.stderr


def test_serve_port_in_use_is_a_clear_error(srv: RunningServer, tmp_path: Path) -> None:
    result = run_cli("serve", "--port", str(srv.port), "--data", str(tmp_path))
    assert result.returncode == 3 and "cannot listen" in result.stderr
