"""``sockhub talk`` as real processes: the address book, piped lines, and the terminal prompt."""

from __future__ import annotations

import base64
import json
import os
import pty
import re
import select
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sockhub.cli.main import main
from sockhub.talk import AddressBook

SOCKHUB = [sys.executable, "-m", "sockhub"]
LISTENER = [*SOCKHUB, "talk", "--listen", "127.0.0.1:0"]
ENV = {**os.environ, "PROMPT_TOOLKIT_NO_CPR": "1", "TERM": "xterm"}


def talk(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SOCKHUB, "talk", *args], input=stdin, capture_output=True, text=True, timeout=60, env=ENV
    )


def book_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """``sockhub talk ARGS`` in this process (the book commands need no event loop)."""
    code = main(["talk", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_address_book_add_list_remove(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    book = ["--book", str(tmp_path / "conf" / "talk.toml")]
    code, out, _ = book_cli(capsys, *book, "--add", "bob", "127.0.0.1:9698", "--new-key")
    assert code == 0
    key = base64.b64decode(out.strip(), validate=True)
    assert len(key) == 32 and out.count("\n") == 1  # the key alone on stdout
    assert (tmp_path / "conf" / "talk.toml").stat().st_mode & 0o777 == 0o600
    (tmp_path / "bob.key").write_text(out)
    key_file = ["--key-file", str(tmp_path / "bob.key")]
    assert book_cli(capsys, *book, "--add", "carol", "[::1]:7000", *key_file)[0] == 0
    assert book_cli(capsys, *book, "--add", "dave", "10.0.0.4:9698")[0] == 0
    assert book_cli(capsys, *book, "--list")[1].splitlines() == [
        "bob\t127.0.0.1:9698\tkey",
        "carol\t[::1]:7000\tkey",
        "dave\t10.0.0.4:9698\t-",
    ]
    loaded = AddressBook.load(tmp_path / "conf" / "talk.toml")
    assert loaded.entries["bob"].key == key == loaded.entries["carol"].key
    assert book_cli(capsys, *book, "--remove", "dave")[0] == 0
    assert "dave" not in book_cli(capsys, *book, "--list")[1]
    for bad in (
        ["--add", "eve", "no-port"],
        ["--add", "eve", "unix:/tmp/x"],
        ["--add", "e ve", "127.0.0.1:1"],
        ["--add", "/eve", "127.0.0.1:1"],
        ["--remove", "nobody"],
        key_file,
        ["--add", "eve", "127.0.0.1:1", "--key-file", str(tmp_path / "missing.key")],
        ["--add", "eve", "127.0.0.1:1", *key_file, "--new-key"],
    ):
        code, _, err = book_cli(capsys, *book, *bad)
        assert code == 2 and err.startswith("sockhub: "), (bad, err)
    (tmp_path / "broken.toml").write_text("[peers.x]\naddress = 5\n")
    code, _, err = book_cli(capsys, "--book", str(tmp_path / "broken.toml"), "--list")
    assert code == 2 and "peers.x" in err


@pytest.fixture
def bob(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """A receiving ``sockhub talk`` (stdin kept open) whose book knows alice by her key."""
    key = base64.b64encode(b"q" * 32).decode()
    (tmp_path / "b.toml").write_text(f'[peers.alice]\naddress = "127.0.0.1:1"\nkey = "{key}"\n')
    (tmp_path / "shared.key").write_text(key)
    proc = subprocess.Popen(
        [*LISTENER, "--name", "bob", "--json", "--book", str(tmp_path / "b.toml")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    assert proc.stderr is not None
    found = re.search(r"listening on (\S+) ", proc.stderr.readline())
    assert found is not None
    try:
        yield proc, found.group(1)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def test_piped_lines_are_sent_and_reported(
    tmp_path: Path, bob: tuple[subprocess.Popen[str], str]
) -> None:
    proc, address = bob
    book = str(tmp_path / "a.toml")
    assert (
        talk(
            "--book", book, "--add", "bob", address, "--key-file", str(tmp_path / "shared.key")
        ).returncode
        == 0
    )
    lines = "hello bob\n" + "x" * 20_000 + "\n/nonsense\n//slash\n"
    sent = talk(
        "--book",
        book,
        "--listen",
        "127.0.0.1:0",
        "--name",
        "alice",
        "--to",
        "bob",
        "--json",
        stdin=lines,
    )
    events = [json.loads(line) for line in sent.stdout.splitlines()]
    assert sent.returncode == 1  # two lines were refused
    assert [e["event"] for e in events].count("delivered") == 2
    errors = [e["message"] for e in events if e["event"] == "error"]
    assert len(errors) == 2 and "over the limit" in errors[0] and "/nonsense" in errors[1]
    assert proc.stdout is not None
    got = [json.loads(proc.stdout.readline()) for _ in range(2)]
    assert [g["text"] for g in got] == ["hello bob", "/slash"]
    assert {(g["from"], g["name"], g["trust"]) for g in got} == {("alice", "alice", "verified")}
    proc.communicate("")  # EOF on bob's stdin: bob leaves
    assert proc.returncode == 0


def test_stdin_from_a_file_or_dev_null(
    tmp_path: Path, bob: tuple[subprocess.Popen[str], str]
) -> None:
    """Files and /dev/null cannot be watched by epoll; talk reads them directly."""
    proc, address = bob
    lines = tmp_path / "lines.txt"
    lines.write_text(f"/to {address}\nfrom a file\n")
    book = str(tmp_path / "a.toml")
    for source in (lines, Path(os.devnull)):
        with source.open() as stdin:
            done = subprocess.run(
                [*LISTENER, "--book", book, "--json"], stdin=stdin, capture_output=True, timeout=60
            )
        assert done.returncode == 0, done
    assert proc.stdout is not None
    assert json.loads(proc.stdout.readline())["text"] == "from a file"


def read_until(fd: int, pattern: str, limit: float = 30.0) -> str:
    """Read a pty until ``pattern`` shows up (the limit only guards against a hang)."""
    seen = ""
    while pattern not in seen:
        ready, _, _ = select.select([fd], [], [], limit)
        assert ready, f"{pattern!r} never came; got {seen!r}"
        seen += os.read(fd, 65536).decode("utf-8", "replace")
    return seen


def test_terminal_prompt(tmp_path: Path, bob: tuple[subprocess.Popen[str], str]) -> None:
    proc, address = bob
    master, slave = pty.openpty()
    alice = subprocess.Popen(
        [*LISTENER, "--name", "alice", "--book", str(tmp_path / "a.toml")],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=ENV,
    )
    os.close(slave)
    try:
        read_until(master, "(no peer: /to NAME)>")
        os.write(master, f"/to {address}\r".encode())
        read_until(master, f"talking to {address}")
        os.write(master, b"from a terminal\r")
        read_until(master, "delivered")
        assert proc.stdout is not None
        assert json.loads(proc.stdout.readline())["text"] == "from a terminal"
        os.write(master, b"/quit\r")
        assert alice.wait(timeout=30) == 0
    finally:
        if alice.poll() is None:
            alice.kill()
            alice.wait()
        os.close(master)
