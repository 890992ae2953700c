"""One error style for every command: one line naming what to do, the documented exit
code, the same JSON object with --json, and never a traceback (real processes, real server).
"""

from __future__ import annotations

import base64
import json
import os
import resource
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import RunningServer, running_server
from .files_support import USER, files_server

SOCKHUB = [sys.executable, "-m", "sockhub"]


def sockhub(
    *args: str, env: dict[str, str], stdin: bytes = b"", cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [*SOCKHUB, *args],
        input=stdin.decode("latin-1"),
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},
        cwd=cwd,
        encoding="latin-1",
    )
    assert "Traceback" not in done.stderr, done.stderr
    return done


def one_line(done: subprocess.CompletedProcess[str]) -> str:
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sockhub: "), done.stderr
    return lines[0]


@pytest.fixture
def files(tmp_path: Path) -> Iterator[tuple[RunningServer, dict[str, str]]]:
    with files_server(tmp_path / "data") as (srv, key):
        env = {
            "SOCKHUB_KEY": base64.b64encode(key).decode(),
            "SOCKHUB_USER": USER,
            "SOCKHUB_SERVER": srv.address,
        }
        yield srv, env


def test_local_write_failures_are_one_line(
    files: tuple[RunningServer, dict[str, str]], tmp_path: Path
) -> None:
    srv, env = files
    (srv.data / "files" / "small.txt").write_bytes(b"x" * 100)
    (srv.data / "files" / "big.bin").write_bytes(os.urandom(3 * 1024 * 1024))
    (tmp_path / "afile").write_text("in the way")
    for name in ("small.txt", "big.bin"):
        done = sockhub("get", name, "afile/", env=env, cwd=tmp_path)
        assert done.returncode == 1 and "afile" in one_line(done)
        done = sockhub("get", "--json", name, "afile/x/", env=env, cwd=tmp_path)
        assert done.returncode == 1
        assert json.loads(done.stdout)["error"] == "local"
    full = subprocess.run(  # a full disk, as the file system says it: the write fails
        [*SOCKHUB, "get", "big.bin", "out/"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},
        cwd=tmp_path,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (65536, 65536)),
    )
    assert full.returncode == 1 and "cannot write out/big.bin" in one_line(full)


def test_a_reader_that_goes_away_is_not_an_error_message(
    files: tuple[RunningServer, dict[str, str]],
) -> None:
    srv, env = files
    for i in range(3000):  # more lines than a pipe holds: the writer must meet the close
        (srv.data / "files" / f"f{i:04}").write_bytes(b"x")
    ls = subprocess.Popen(
        [*SOCKHUB, "ls"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, **env, "PYTHONUNBUFFERED": "1"},
    )
    assert ls.stdout is not None and ls.stderr is not None
    ls.stdout.readline()
    ls.stdout.close()  # `| head -1`
    assert ls.wait(timeout=60) == 1
    assert ls.stderr.read() == b""


def test_chat_from_a_pipe_survives_bad_input_and_a_closed_reader(srv: RunningServer) -> None:
    env = {"SOCKHUB_SERVER": srv.address}
    gbk = "你好".encode("gbk")
    done = sockhub("chat", "--nick", "gbk", env=env, stdin=b"hi " + gbk + b"\n")
    assert done.returncode == 0
    assert "<gbk> hi \ufffd" in done.stdout.encode("latin-1").decode("utf-8")
    assert "not UTF-8" in done.stderr
    listener = subprocess.Popen(
        [*SOCKHUB, "chat", "--nick", "ear", "--listen"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, **env},
    )
    assert listener.stdout is not None and listener.stderr is not None
    assert b"joined lobby as ear" in listener.stderr.readline()
    assert sockhub("say", "--nick", "one", "first", env=env).returncode == 0
    while b"first" not in listener.stdout.readline():
        pass
    listener.stdout.close()
    while listener.poll() is None:  # each message written now meets a closed pipe
        assert sockhub("say", "--nick", "two", "more", env=env).returncode == 0
    assert listener.returncode == 1
    assert b"Traceback" not in listener.stderr.read()


def test_usage_and_connect_errors_say_what_to_do(srv: RunningServer, tmp_path: Path) -> None:
    env = {"SOCKHUB_SERVER": srv.address}
    udp = sockhub("echo", "--udp", "--tls", "hi", env=env)
    assert udp.returncode == 2 and "drop --udp" in one_line(udp)
    bad = sockhub("echo", "--json", "--tls-fingerprint", "zz", "hi", env=env)
    assert bad.returncode == 2 and "64 hex digits" in one_line(bad)
    message = bad.stderr[9:-1]
    assert json.loads(bad.stdout) == {
        "ok": False,
        "type": "error",
        "error": "usage",
        "message": message,
    }
    mixed = sockhub("echo", "--tls", "hi", env=env)
    assert mixed.returncode == 3 and "remove --tls" in one_line(mixed)
    with running_server(tmp_path / "tls", tls=True) as tls:
        plain = sockhub("echo", "--timeout", "2", "-s", tls.address, "hi", env=env)
        assert plain.returncode == 3 and "add --tls" in one_line(plain)
    conf = tmp_path / "bad.toml"
    conf.write_text('log_level = "loud"\n')
    config = sockhub("serve", "--config", str(conf), "--data", str(tmp_path / "d"), env={})
    assert config.returncode == 2 and "log_level" in one_line(config)


def test_serve_with_a_certificate_serves_tls(tmp_path: Path) -> None:
    with running_server(tmp_path / "first", tls=True):
        pass  # makes a self-signed certificate in first/
    cert = next((tmp_path / "first").rglob("*cert*.pem"))
    key = next((tmp_path / "first").rglob("*key*.pem"))
    serve = subprocess.Popen(
        [
            *SOCKHUB,
            "serve",
            "--port",
            "0",
            "--no-udp",
            "--data",
            str(tmp_path / "d"),
            "--tls-cert",
            str(cert),
            "--tls-key",
            str(key),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert serve.stdout is not None
        lines = [serve.stdout.readline() for _ in range(2)]
        assert lines[1].strip().startswith("tls "), lines
    finally:
        serve.terminate()
        serve.wait(timeout=30)
