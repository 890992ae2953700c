"""``sockhub put/get/ls/rm`` as a user runs them."""

from __future__ import annotations

import base64
import json
import os
import pty
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sockhub.cli.common import CliError
from sockhub.cli.files_plan import local_target, remote_dir, renames, split_dest
from sockhub.cli.main import main
from sockhub.protocol.errors import FileBadPath

from .conftest import RunningServer
from .files_support import USER, files_server, interrupt_upload, stored

MiB = 1024 * 1024


Run = Callable[..., tuple[int, list[dict[str, Any]], str]]
Cli = tuple[RunningServer, bytes, Run]


def _env(srv: RunningServer, key: bytes) -> dict[str, str]:
    return {
        "SOCKHUB_KEY": base64.b64encode(key).decode(),
        "SOCKHUB_USER": USER,
        "SOCKHUB_SERVER": srv.address,
    }


@pytest.fixture
def cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Iterator[Cli]:
    """A server, and ``run(COMMAND, ARGS...)``: the command with --json, in-process."""
    with files_server(tmp_path / "data") as (srv, key):
        for name, value in _env(srv, key).items():
            monkeypatch.setenv(name, value)
        monkeypatch.chdir(tmp_path)

        def run(command: str, *args: str) -> tuple[int, list[dict[str, Any]], str]:
            code = main([command, "--json", *args])
            out, err = capsys.readouterr()
            return code, [json.loads(line) for line in out.splitlines()], err

        yield srv, key, run


def test_put_get_tree(cli: Cli, tmp_path: Path) -> None:
    srv, _key, run = cli
    tree = tmp_path / "tree"
    (tree / "sub" / "deeper").mkdir(parents=True)
    (tree / "a.txt").write_bytes(b"a")
    (tree / "sub" / "b.bin").write_bytes(os.urandom(MiB + 1))  # big: not pipelined
    (tree / "sub" / "deeper" / "c").write_bytes(b"")
    (tmp_path / "secret").write_text("outside")
    os.symlink(tmp_path / "secret", tree / "out-link")
    os.symlink("a.txt", tree / "in-link")
    os.symlink(tmp_path, tree / "dir-link")
    code, lines, err = run("put", "-r", "tree", "backup/")
    assert code == 0
    assert sorted(line["path"] for line in lines) == [
        "backup/tree/a.txt",
        "backup/tree/in-link",
        "backup/tree/sub/b.bin",
        "backup/tree/sub/deeper/c",
    ]
    assert "out-link" in err and "dir-link" in err
    assert (
        stored(srv, "backup/tree/sub/b.bin").read_bytes() == (tree / "sub" / "b.bin").read_bytes()
    )
    code, lines, _ = run("put", "-r", "tree", "backup/")
    assert code == 0 and all(line["unchanged"] and line["sent"] == 0 for line in lines)

    code, lines, _ = run("get", "-r", "backup/tree", "copy/")
    assert code == 0 and len(lines) == 4
    for rel in ("a.txt", "in-link", "sub/b.bin", "sub/deeper/c"):
        assert (tmp_path / "copy" / "tree" / rel).read_bytes() == stored(
            srv, f"backup/tree/{rel}"
        ).read_bytes()
    code, lines, _ = run("get", "-r", "backup/tree", "copy/")  # again: all skipped, any size
    assert code == 0 and len(lines) == 4
    assert all(line["unchanged"] and line["sent"] == 0 for line in lines)

    code, lines, _ = run("ls", "backup/tree")
    assert {(e["name"], e["type"]) for e in lines} == {
        ("a.txt", "file"),
        ("in-link", "file"),
        ("sub", "dir"),
    }
    code, lines, err = run("rm", "backup/tree/sub")
    assert code == 1 and lines[0]["error"] == "file.not_empty"
    code, lines, _ = run("rm", "backup/tree/a.txt")
    assert code == 0 and not stored(srv, "backup/tree/a.txt").exists()


def test_plain_output_and_errors(
    cli: Cli,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _srv, _key, _run = cli
    (tmp_path / "x.txt").write_text("x")
    (tmp_path / "evil\x1b[31mname").write_text("y")
    assert main(["put", "x.txt"]) == 0
    out, _ = capsys.readouterr()
    assert out.startswith("put x.txt -> x.txt  1 B  sha256 ")
    assert main(["put", "x.txt"]) == 0  # the same content is already there
    assert "unchanged" in capsys.readouterr().out
    assert main(["put", "evil\x1b[31mname", "x.txt", "docs/"]) == 1  # one bad, one fine
    out, err = capsys.readouterr()
    assert "\x1b" not in out + err and "\\x1b" in err
    assert main(["put", "nothing-here"]) == 1  # as cp and scp: a failure, not a usage error
    assert main(["put", "."]) == 2  # a folder without -r
    assert main(["get", "missing.txt"]) == 1
    assert main(["ls"]) == 0
    assert "x.txt" in capsys.readouterr().out


def test_rerun_resumes_both_ways(cli: Cli, tmp_path: Path) -> None:
    srv, key, run = cli
    data = os.urandom(4 * MiB)
    (tmp_path / "big").write_bytes(data)
    interrupt_upload(srv, key, "big", len(data), data[:MiB])
    code, [line], _ = run("put", "big")
    assert code == 0 and line["offset"] == MiB and line["sent"] == 3 * MiB
    (tmp_path / "down").mkdir()
    (tmp_path / "down" / ".big.sockhub-part").write_bytes(data[: 3 * MiB])
    code, [line], _ = run("get", "big", "down")
    assert code == 0 and line["offset"] == 3 * MiB and line["sent"] == MiB
    assert (tmp_path / "down" / "big").read_bytes() == data


def test_progress_bars_only_on_a_terminal(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(os.urandom(3 * MiB))
    with files_server(tmp_path / "data") as (srv, key):
        env = {**os.environ, **_env(srv, key), "COLUMNS": "120"}
        outputs = []
        for extra in ([], ["--json"]):
            leader, follower = pty.openpty()
            proc = subprocess.Popen(
                [sys.executable, "-m", "sockhub", "put", "--overwrite", "f", *extra],
                cwd=tmp_path,
                env=env,
                stdout=follower,
                stderr=subprocess.DEVNULL,
            )
            os.close(follower)
            chunks = []
            while True:
                try:
                    chunk = os.read(leader, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                chunks.append(chunk)
            assert proc.wait() == 0
            os.close(leader)
            outputs.append(b"".join(chunks).decode(errors="replace"))
            (tmp_path / "f").write_bytes(os.urandom(3 * MiB))
        bars, plain = outputs
        assert "1 file " in bars and "1 files" not in bars and "━" in bars
        assert "MiB" in bars and " MB" not in bars  # one unit system: the bars' and the lines'
        assert "━" not in plain and json.loads(plain.strip().splitlines()[-1])["ok"] is True


def test_argument_rules(tmp_path: Path) -> None:
    (tmp_path / "a").write_text("a")
    assert split_dest(["a"]) == (["a"], None)
    assert split_dest(["a", "b/"]) == (["a"], "b/")
    assert split_dest(["a", "b", "c"]) == (["a", "b"], "c")
    assert renames(["a"], "b", lambda p: False)
    assert not renames(["a"], "b", lambda p: True)  # an existing folder: into it
    assert not renames(["a"], "b/", lambda p: False)
    assert not renames(["a", "b"], "c", lambda p: False)
    assert remote_dir("/") == "" and remote_dir("./") == "" and remote_dir("/x/y/") == "x/y"
    with pytest.raises(FileBadPath):
        remote_dir("x/../y")


def test_received_names_stay_inside(tmp_path: Path) -> None:
    base = tmp_path / "target"
    base.mkdir()
    assert local_target(base, ("a", "b")) == base / "a" / "b"
    for bad in (("..", "x"), ("a/b",), ("",), ("bell\x07",)):
        with pytest.raises(CliError):
            local_target(base, bad)
    os.symlink(tmp_path, base / "link")
    with pytest.raises(CliError, match="elsewhere"):
        local_target(base, ("link", "x"))
