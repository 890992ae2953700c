"""The data folder: found the same way from any directory, and held by one server at a time."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sockhub.server.datadir import default_data_folder

SOCKHUB = [sys.executable, "-m", "sockhub"]


def home_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SOCKHUB_", "XDG_"))}
    return {**env, "HOME": str(home)}


def test_the_default_is_the_platform_data_directory(tmp_path: Path) -> None:
    assert default_data_folder({"HOME": "/h"}).parts[-3:] == (".local", "share", "sockhub")
    assert default_data_folder({"XDG_DATA_HOME": "/x"}) == Path("/x/sockhub")
    assert default_data_folder({"XDG_DATA_HOME": "rel", "SOCKHUB_DATA": "/d"}) == Path("/d")


def test_user_add_elsewhere_edits_the_same_folder(tmp_path: Path) -> None:
    env = home_env(tmp_path / "home")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = subprocess.run(
        [*SOCKHUB, "user", "add", "alice"], cwd=elsewhere, env=env, capture_output=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "home/.local/share/sockhub/users.json").exists()
    assert not any(elsewhere.iterdir())  # nothing appears in the current directory
    listed = subprocess.run(
        [*SOCKHUB, "user", "list"], cwd=tmp_path, env=env, capture_output=True, timeout=60
    )
    assert b"alice" in listed.stdout


@contextmanager
def serving(data: Path, env: dict[str, str]) -> Iterator[tuple[subprocess.Popen[str], str]]:
    proc = subprocess.Popen(
        [*SOCKHUB, "serve", "--port", "0", "--no-udp", "--data", str(data)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        banner = ""
        while "stop with Ctrl-C" not in banner:
            line = proc.stdout.readline()
            assert line, proc.stderr.read() if proc.stderr else ""
            banner += line
        yield proc, banner
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_one_server_per_folder_and_hints_name_it(tmp_path: Path) -> None:
    env = home_env(tmp_path / "home")
    data = tmp_path / "my data"
    with serving(data, env) as (first, banner):
        assert f"--data '{data}'" in banner  # the user-add hint works from anywhere
        second = subprocess.run(
            [*SOCKHUB, "serve", "--port", "0", "--no-udp", "--data", str(data)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
        assert second.returncode == 1
        message = second.stderr.strip()
        assert str(data) in message and f"PID {first.pid}" in message
        assert "Traceback" not in message and message.count("\n") == 0
    with serving(data, env):  # the lock went with the first server
        pass
    with serving(tmp_path / "home/.local/share/sockhub", env) as (_, banner):
        assert "--data" not in banner.split("try, from")[1]  # the default needs no flag
        assert re.search(r"data .*home/\.local/share/sockhub", banner)
