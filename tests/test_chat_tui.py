"""The interactive ``sockhub chat`` in a real terminal (tmux), against a real server and a
hostile one that sends escape sequences the real server would refuse.

tmux is the terminal: the test types with ``send-keys`` and reads the screen with
``capture-pane``; it polls the screen because a terminal has nothing to await.
"""

from __future__ import annotations

import base64
import contextlib
import os
import shlex
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sockhub import Client
from sockhub.client.chat import ChatEvent, ChatMessage
from sockhub.protocol.frames import Decoder, Frame, encode_frame

from .conftest import RunningServer, running_server
from .test_chat_client import relay

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux (make sysdeps)")

ENV = {k: v for k, v in os.environ.items() if k not in ("SOCKHUB_USER", "SOCKHUB_KEY")}


class Terminal:
    """One command in a private tmux server, 100x30."""

    def __init__(self, command: list[str]) -> None:
        self.name = f"sockhub-test-{os.getpid()}-{id(self)}"
        shell = f'{shlex.join(command)}; echo "[exit $?]"; sleep 600'
        env = {**ENV, "PROMPT_TOOLKIT_NO_CPR": "1", "TERM": "xterm-256color"}
        self.tmux("new-session", "-d", "-x", "100", "-y", "30", "sh", "-c", shell, env=env)

    def tmux(self, *args: str, env: dict[str, str] | None = None) -> str:
        done = subprocess.run(
            ["tmux", "-L", self.name, *args],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
            env=env or ENV,
        )
        return done.stdout

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-J", "-t", "0")

    def wait_until(self, ok: Callable[[str], bool], what: str, limit: float = 30.0) -> str:
        """The screen once ``ok`` holds for it (the limit only guards against a hang)."""
        deadline = time.monotonic() + limit
        while not ok(screen := self.screen()):
            if time.monotonic() > deadline:
                raise AssertionError(f"never saw {what}; the screen:\n{screen}")
            time.sleep(0.05)
        return screen

    def wait_for(self, text: str) -> str:
        return self.wait_until(lambda screen: text in screen, repr(text))

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", "0", *keys)

    def type(self, text: str) -> None:
        self.keys("-l", text)

    def close(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.tmux("kill-server")


@contextlib.contextmanager
def terminal(*args: str) -> Iterator[Terminal]:
    term = Terminal([sys.executable, "-m", "sockhub", "chat", *args])
    try:
        yield term
    finally:
        term.close()


class HostileServer:
    """Speaks just enough sockhub to let a client join, then sends what no server should."""

    EVIL_TEXT = b"\x1b[2J\x1b[31mRED ALERT\x1b[0m and a bell\x07"
    EVIL_NICK = "evil\x1b[5m"
    EVIL_EVENT = "\x1b]0;pwned\x07"

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = self.listener.accept()
                threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        hello = {
            "op": "hello",
            "proto": 1,
            "server": "hostile/0",
            "nonce": base64.b64encode(bytes(32)).decode(),
            "auth": [],
            "services": ["chat"],
            "limits": {"idle_timeout": 300},
        }
        conn.sendall(encode_frame(hello))
        decoder = Decoder()
        with contextlib.suppress(OSError), conn:
            while data := conn.recv(65536):
                decoder.receive_data(data)
                while isinstance(event := decoder.next_event(), Frame):
                    self._answer(conn, event.header)

    def _answer(self, conn: socket.socket, header: dict[str, object]) -> None:
        if header.get("op") != "chat.join":
            return
        room, nick = header["room"], header["nick"]
        conn.sendall(
            encode_frame(
                {
                    "op": "chat.joined",
                    "re": header["id"],
                    "room": room,
                    "nick": nick,
                    "members": [nick, self.EVIL_NICK],
                    "seq": 0,
                }
            )
            + encode_frame(
                {
                    "op": "chat.event",
                    "room": room,
                    "event": "join",
                    "nick": self.EVIL_EVENT,
                    "ts": time.time(),
                }
            )
            + encode_frame(
                {
                    "op": "chat.msg",
                    "room": room,
                    "from": self.EVIL_NICK,
                    "seq": 1,
                    "ts": time.time(),
                },
                self.EVIL_TEXT,
            )
        )

    def close(self) -> None:
        self.listener.close()


def test_escape_sequences_from_a_peer_are_shown_escaped() -> None:
    server = HostileServer()
    try:
        with terminal("-s", f"127.0.0.1:{server.port}", "--nick", "bob") as term:
            screen = term.wait_for("RED ALERT")
            assert "\\x1b[2J\\x1b[31mRED ALERT\\x1b[0m and a bell\\x07" in screen
            assert "<evil\\x1b[5m>" in screen
            assert "\\x1b]0;pwned\\x07 joined" in screen
            assert "here: evil\\x1b[5m" in screen
            colours = term.tmux("capture-pane", "-p", "-e", "-t", "0")
            line = next(x for x in colours.splitlines() if "RED ALERT" in x)
            assert "\x1b[31mRED" not in line  # the peer's colour was never applied
    finally:
        server.close()


def heard(c: Client) -> ChatMessage | ChatEvent:
    """What ``c`` hears next from the others (its own messages coming back are skipped)."""
    while isinstance(item := c.next_chat(30), ChatMessage) and item.sender == "py":
        pass
    return item


def event(c: Client) -> tuple[str, str]:
    item = heard(c)
    assert isinstance(item, ChatEvent), item
    return item.event, item.nick


def test_chatting_in_a_terminal(srv: RunningServer) -> None:
    with Client.connect(srv.address) as py:
        py.join("lobby", "py")
        py.say("lobby", "early one")
        py.say("lobby", "early two")
        with terminal("-s", srv.address, "--nick", "tui", "--history", "1") as term:
            joined = heard(py)
            assert isinstance(joined, ChatEvent) and (joined.event, joined.nick) == ("join", "tui")
            term.wait_for("joined lobby as tui; here: py")
            assert "early two" in term.screen() and "early one" not in term.screen()
            term.keys("PPage")  # scroll-back, as /more
            screen = term.wait_for("1 older message(s) of lobby above; the beginning")
            assert screen.count("<py> early one") == 1
            py.say("lobby", "hello tui")
            term.wait_for("<py> hello tui")

            term.type("half typed")
            term.wait_for("tui> half typed")
            py.say("lobby", "interrupting")

            def redrawn(screen: str) -> bool:
                lines = [line for line in screen.splitlines() if line.strip()]
                return "<py> interrupting" in screen and lines[-1] == "[lobby] tui> half typed"

            screen = term.wait_until(redrawn, "the message above the intact input line")
            assert screen.count("half typed") == 1  # the line was never garbled or repeated

            term.keys("Enter")
            said = heard(py)
            assert isinstance(said, ChatMessage) and (said.sender, said.text) == (
                "tui",
                "half typed",
            )
            term.wait_for("<tui> half typed")

            term.type("/who")
            term.keys("Enter")
            term.wait_for("in lobby: py, tui")
            term.type("/nick tui2")
            term.keys("Enter")
            renamed = heard(py)
            assert isinstance(renamed, ChatEvent) and (renamed.nick, renamed.old) == ("tui2", "tui")
            term.type("/msg py psst")
            term.keys("Enter")
            dm = heard(py)
            assert isinstance(dm, ChatMessage) and (dm.dm, dm.sender, dm.text) == (
                True,
                "tui2",
                "psst",
            )

            term.type("/quit")
            term.keys("Enter")
            term.wait_for("[exit 0]")
            left = heard(py)
            assert isinstance(left, ChatEvent) and (left.event, left.nick) == ("leave", "tui2")


def test_the_terminal_reconnects_with_a_notice(tmp_path: Path) -> None:
    with running_server(tmp_path) as srv, relay(srv.port) as net, Client.connect(srv.address) as py:
        py.join("lobby", "py")
        with terminal("-s", f"127.0.0.1:{net.port}", "--nick", "tui") as term:
            assert event(py) == ("join", "tui")
            term.wait_for("joined lobby as tui")
            net.down()
            term.wait_for("*** disconnected")
            assert event(py) == ("leave", "tui")
            py.say("lobby", "while you were away")
            net.up.set()
            term.wait_for("*** reconnected; rejoined lobby")
            assert "<py> while you were away" in term.screen()
            term.type("back")
            term.keys("Enter")
            assert event(py) == ("join", "tui")
            said = heard(py)
            assert isinstance(said, ChatMessage) and said.text == "back"
