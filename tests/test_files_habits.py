"""``put``/``get``/``rm`` with the habits of cp and scp, and progress bars that tell the truth."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import pty
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import RunningServer
from .files_support import USER, files_server, stored

MiB = 1024 * 1024
SOCKHUB = [sys.executable, "-m", "sockhub"]


class Cli:
    def __init__(self, srv: RunningServer, key: bytes, here: Path) -> None:
        self.srv = srv
        self.here = here
        self.env = {
            **os.environ,
            "SOCKHUB_KEY": base64.b64encode(key).decode(),
            "SOCKHUB_USER": USER,
            "SOCKHUB_SERVER": srv.address,
            "COLUMNS": "150",
        }

    def json(self, *args: str) -> tuple[int, list[dict[str, Any]]]:
        done = subprocess.run(
            [*SOCKHUB, *args, "--json"],
            capture_output=True,
            text=True,
            timeout=60,
            env=self.env,
            cwd=self.here,
        )
        assert "Traceback" not in done.stderr
        assert done.returncode != 3, done.stderr  # a refused connection is the test's fault
        return done.returncode, [json.loads(line) for line in done.stdout.splitlines()]

    def on_terminal(self, *args: str, interrupt_at: bytes | None = None) -> tuple[int, str]:
        """Run with stdout on a pty (bars drawn); SIGINT once ``interrupt_at`` shows up."""
        leader, follower = pty.openpty()
        proc = subprocess.Popen(
            [*SOCKHUB, *args],
            cwd=self.here,
            env=self.env,
            stdout=follower,
            stderr=follower,
            stdin=subprocess.DEVNULL,
        )
        os.close(follower)
        seen = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
            if interrupt_at is not None and interrupt_at in seen:
                proc.send_signal(signal.SIGINT)
                interrupt_at = None
        os.close(leader)
        return proc.wait(timeout=60), seen.decode(errors="replace")


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[Cli]:
    here = tmp_path / "here"
    here.mkdir()
    with files_server(tmp_path / "data") as (srv, key):
        yield Cli(srv, key, here)


def test_put_and_get_rename_like_scp(cli: Cli) -> None:
    (cli.here / "a.bin").write_bytes(b"a" * 10)
    assert cli.json("put", "a.bin", "b.bin")[0] == 0
    assert stored(cli.srv, "b.bin").read_bytes() == b"a" * 10
    assert cli.json("put", "a.bin", "dir/")[0] == 0  # a trailing / is a folder
    assert cli.json("put", "a.bin", "dir")[1][0]["path"] == "dir/a.bin"  # an existing folder
    assert cli.json("get", "b.bin", "c.bin")[0] == 0
    assert (cli.here / "c.bin").read_bytes() == b"a" * 10
    (cli.here / "tree").mkdir()
    (cli.here / "tree" / "x").write_bytes(b"x")
    assert cli.json("put", "-r", "tree", "copy")[1][0]["path"] == "copy/x"  # cp -r: renamed
    assert cli.json("get", "-r", "copy", "back")[0] == 0
    assert (cli.here / "back" / "x").read_bytes() == b"x"


@pytest.mark.parametrize("size", [100, 2 * MiB])
def test_get_skips_the_same_refuses_a_different_and_keeps_mtimes(cli: Cli, size: int) -> None:
    data = os.urandom(size)
    remote = cli.srv.data / "files" / "f"
    remote.write_bytes(data)
    os.utime(remote, (1_500_000_000, 1_500_000_000))
    code, [line] = cli.json("get", "f")
    assert code == 0 and not line["unchanged"]
    assert (cli.here / "f").stat().st_mtime == 1_500_000_000  # as scp -p
    code, [line] = cli.json("get", "f")
    assert code == 0 and line["unchanged"] and line["sent"] == 0  # any size
    (cli.here / "f").write_bytes(b"edited here" + data[11:])
    code, [line] = cli.json("get", "f")
    assert code == 1 and line["error"] == "file.exists" and "--overwrite" in line["message"]
    assert (cli.here / "f").read_bytes().startswith(b"edited here")  # untouched
    code, [line] = cli.json("get", "--overwrite", "f")
    assert code == 0 and (cli.here / "f").read_bytes() == data


def test_rm_several_and_recursive(cli: Cli) -> None:
    files = cli.srv.data / "files"
    (files / "a" / "b").mkdir(parents=True)
    for name in ("a/1", "a/b/2", "x", "y"):
        (files / name).write_bytes(b".")
    code, lines = cli.json("rm", "x", "y", "a")
    assert code == 1 and [line["ok"] for line in lines] == [True, True, False]
    assert "-r" in lines[2]["message"]
    assert not (files / "x").exists() and (files / "a").exists()
    code, [line] = cli.json("rm", "-r", "a")
    assert code == 0 and line["removed"] == 4 and not (files / "a").exists()


def _last_overall(screen: str, label: str) -> str:
    """The last drawing of the overall bar's figures (``done/total unit``)."""
    figures = re.findall(re.escape(label) + r"\s.*?([\d.]+/[\d.]+ \w+)", screen)
    assert figures, screen
    return figures[-1]


def test_many_small_files_end_at_the_real_total(cli: Cli) -> None:
    (cli.here / "many").mkdir()
    for i in range(40):
        (cli.here / "many" / f"f{i}").write_bytes(b"s" * 2048)
    code, screen = cli.on_terminal("put", "-r", "many")
    assert code == 0 and _last_overall(screen, "40 files") == "80.0/80.0 KiB"
    code, screen = cli.on_terminal("get", "-r", "many", "down/")
    assert code == 0 and _last_overall(screen, "40 files") == "80.0/80.0 KiB"


class StallingRelay:
    """Forwards one connection, but only ``budget`` bytes from the server: then it stalls,
    as a slow network would, so an interrupt lands in the middle of a transfer."""

    def __init__(self, port: int, budget: int) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.target = port
        self.budget = budget
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            client, _ = self.listener.accept()
            server = socket.create_connection(("127.0.0.1", self.target))
            threading.Thread(target=self._pipe, args=(client, server, None), daemon=True).start()
            self._pipe(server, client, self.budget)

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket, budget: int | None) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536 if budget is None else min(65536, budget)):
                dst.sendall(data)
                if budget is not None:
                    budget -= len(data)
                    if budget <= 0:
                        threading.Event().wait()  # stall for ever (a daemon thread)

    def close(self) -> None:
        self.listener.close()


def test_an_interrupted_download_says_where_it_stopped(cli: Cli) -> None:
    (cli.srv.data / "files" / "big").write_bytes(os.urandom(8 * MiB))
    relay = StallingRelay(cli.srv.port, 3 * MiB)
    try:
        cli.env["SOCKHUB_SERVER"] = f"127.0.0.1:{relay.port}"
        code, screen = cli.on_terminal("get", "big", interrupt_at=b"3.0/8.0")
    finally:
        relay.close()
    assert code == 130
    assert re.search(r"interrupted at [\d.]+ MiB of 8\.0 MiB; run the same command again", screen)
    assert "8.0/8.0 MiB" not in screen
    assert not (cli.here / "big").exists() and (cli.here / ".big.sockhub-part").exists()
