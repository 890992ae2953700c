"""The interactive chat as irssi users expect it (tmux is the terminal), and the piped
chat's end when its key stops working."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sockhub import Client
from sockhub.client.chat import ChatMessage
from sockhub.server.users import UserStore

from .conftest import RunningServer, running_server
from .test_chat_client import relay
from .test_chat_tui import event, heard, terminal

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux (make sysdeps)")


def test_own_line_once_paste_escaped_dm_from_me_and_tab(srv: RunningServer) -> None:
    with Client.connect(srv.address) as py:
        py.join("lobby", "py")
        with terminal("-s", srv.address, "--nick", "tui") as term:
            term.wait_for("joined lobby as tui; here: py")
            assert event(py) == ("join", "tui")
            term.wait_until(lambda screen: screen.rstrip().endswith("tui>"), "the prompt")
            term.type("hello once")
            term.keys("Enter")
            screen = term.wait_for("<tui> hello once")
            assert screen.count("hello once") == 1  # the typed line gave way to the echo
            assert heard(py).text == "hello once"  # type: ignore[union-attr]

            term.tmux("set-buffer", "pasted \x1b[31mred")
            term.tmux("paste-buffer", "-p", "-t", "0")  # bracketed paste, ESC and all
            term.keys("Enter")
            said = heard(py)
            assert isinstance(said, ChatMessage) and said.text == "pasted \u241b[31mred"
            term.wait_for("<tui> pasted \u241b[31mred")

            py.dm("tui", "psst")
            term.wait_for("[dm from py] psst")

            term.type("/me waves")
            term.keys("Enter")
            term.wait_for("* tui waves")
            action = heard(py)
            assert isinstance(action, ChatMessage) and action.text == "/me waves"

            term.type("/wh")
            term.keys("Tab")
            term.wait_for("tui> /who")
            term.keys("C-u")
            term.type("p")
            term.keys("Tab")
            term.wait_for("tui> py: ")
            term.type("hi")
            term.keys("Enter")
            said = heard(py)
            assert isinstance(said, ChatMessage) and said.text == "py: hi"

            term.tmux("send-keys", "-t", "0", "-H", "61", "ff", "1b", "5b", "3c", "62")
            term.keys("Enter")  # bytes that are not UTF-8, an unfinished sequence: no crash
            said = heard(py)
            assert isinstance(said, ChatMessage) and "\ufffd" in said.text
            term.tmux("send-keys", "-t", "0", "-H", "61", "1b", "5b", "3c", "31", "4d", "62")
            term.keys("Enter")  # a malformed mouse report (it crashed prompt_toolkit's handler)
            said = heard(py)
            assert isinstance(said, ChatMessage) and said.text == "ab"  # the line is whole
            assert "Traceback" not in term.screen() and "Unhandled" not in term.screen()


def test_a_line_typed_while_disconnected_is_sent_on_reconnect(tmp_path: Path) -> None:
    with running_server(tmp_path) as srv, relay(srv.port) as net, Client.connect(srv.address) as py:
        py.join("lobby", "py")
        with terminal("-s", f"127.0.0.1:{net.port}", "--nick", "tui") as term:
            assert event(py) == ("join", "tui")
            term.wait_for("joined lobby as tui")
            net.down()
            term.wait_for("*** disconnected")
            assert event(py) == ("leave", "tui")
            term.type("typed while away")
            term.keys("Enter")
            term.wait_for("sent when the connection is back")
            net.up.set()
            term.wait_for("*** reconnected")
            assert event(py) == ("join", "tui")
            said = heard(py)
            assert isinstance(said, ChatMessage) and said.text == "typed while away"


def test_json_events_carry_their_fields_and_errors_one_shape(srv: RunningServer) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "sockhub", "chat", "-s", srv.address, "--json", "--nick", "j1"],
        input="/nick j2\n/bogus\n/me jumps\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    nick = next(x for x in lines if x.get("type") == "nick")
    assert (nick["nick"], nick["old"], nick["room"]) == ("j2", "j1", "lobby")
    error = next(x for x in lines if x.get("type") == "error")
    assert set(error) == {"ok", "type", "error", "message"} and error["error"] == "usage"
    action = next(x for x in lines if x.get("type") == "msg")
    assert action["action"] is True and action["text"] == "jumps"
    failed = subprocess.run(
        [sys.executable, "-m", "sockhub", "echo", "--json", "-s", "127.0.0.1:1", "x"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert set(json.loads(failed.stdout)) == set(error)  # the same shape everywhere


def test_a_key_refused_on_reconnect_ends_with_exit_3(tmp_path: Path) -> None:
    with running_server(tmp_path) as srv, relay(srv.port) as net:
        key = base64.b64encode(srv.add_user("neo", ("chat",))).decode()
        env = {**os.environ, "SOCKHUB_USER": "neo", "SOCKHUB_KEY": key}
        chat = subprocess.Popen(
            [sys.executable, "-m", "sockhub", "chat", "-s", f"127.0.0.1:{net.port}", "--listen"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert chat.stderr is not None
        assert "joined lobby as neo" in chat.stderr.readline()
        UserStore(srv.data).remove("neo")
        net.down()
        net.up.set()
        assert chat.wait(timeout=60) == 3
        assert "authentication failed" in chat.stderr.read()
