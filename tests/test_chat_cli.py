"""``sockhub say`` and ``sockhub chat`` with stdin not a terminal, as real processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from sockhub import Client
from sockhub.client.chat import ChatMessage

from .conftest import RunningServer

SOCKHUB = [sys.executable, "-m", "sockhub"]
ENV = {k: v for k, v in os.environ.items() if k not in ("SOCKHUB_USER", "SOCKHUB_KEY")}


def run(
    srv: RunningServer, *args: str, stdin: str = "", server: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SOCKHUB, *args, "--server", server or srv.address],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env=ENV,
    )


def test_say_sends_one_message(srv: RunningServer) -> None:
    with Client.connect(srv.address) as watcher:
        watcher.join("news", "watcher")
        done = run(srv, "say", "--room", "news", "--nick", "bot", "--json", "it", "works")
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == {"ok": True, "room": "news", "nick": "bot", "seq": 1}
        quiet = run(srv, "say", "-r", "news", "-n", "bot", "again")
        assert (quiet.returncode, quiet.stdout) == (0, "")
        watcher.say("news", "end")  # everything the says caused arrives before this
        seen = []
        while not isinstance(item := watcher.next_chat(5), ChatMessage) or item.text != "end":
            seen.append(item)
        assert [(type(i), getattr(i, "text", None)) for i in seen] == [
            (ChatMessage, "it works"),
            (ChatMessage, "again"),
        ]  # and no join or leave event around them


def test_say_exit_codes(srv: RunningServer) -> None:
    bad = run(srv, "say", "--room", "no room", "--nick", "x", "hi")
    assert bad.returncode == 1 and "chat.bad_name" in bad.stderr
    with Client.connect(srv.address) as holder:
        holder.join("lobby", "taken")
        chosen = run(srv, "say", "--nick", "taken", "hi")
        assert chosen.returncode == 1 and "chat.nick_taken" in chosen.stderr
    nowhere = run(srv, "say", "hi", server="127.0.0.1:1")
    assert nowhere.returncode == 3
    usage = run(srv, "say", "--room", "lobby")
    assert usage.returncode == 2


def test_a_default_nick_that_is_taken_gets_a_number(srv: RunningServer) -> None:
    with Client.connect(srv.address) as holder:
        holder.join("lobby", "guest")
        env_user = {**ENV, "USER": "guest", "LOGNAME": "guest"}
        done = subprocess.run(
            [*SOCKHUB, "say", "--json", "-s", srv.address, "hello"],
            capture_output=True,
            text=True,
            timeout=60,
            env=env_user,
        )
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["nick"] == "guest_2"


def test_piped_chat_sends_lines_and_prints_the_room(srv: RunningServer) -> None:
    with Client.connect(srv.address) as c:
        c.join("dev", "earlier")
        c.say("dev", "before \u202e the pipe")
        lines = "first line\n/who\n//slash at the start\n/rooms\n"
        done = run(srv, "chat", "--room", "dev", "--nick", "pipe", "--history", "5", stdin=lines)
        assert done.returncode == 0, done.stderr
        out = done.stdout.splitlines()
        assert [line.split(" ", 1)[1] for line in out] == [
            "<earlier> before \\u202e the pipe",  # peer text is escaped
            "<pipe> first line",
            "<pipe> /slash at the start",
        ]
        assert "in dev: earlier, pipe" in done.stderr and "rooms: dev (2)" in done.stderr
        said = [m.text for m in c.chat_events(timeout=1) if isinstance(m, ChatMessage)]
        assert said == ["before \u202e the pipe", "first line", "/slash at the start"]


def test_piped_chat_json_and_errors(srv: RunningServer) -> None:
    done = run(
        srv,
        "chat",
        "--json",
        "-r",
        "ops",
        "-n",
        "j",
        stdin="hello\n/msg nobody hi\n/nick jay\n/frobnicate\n/leave\n/join other\nthere\n",
    )
    assert done.returncode == 1  # one line failed: the exit code says so
    objects = [json.loads(line) for line in done.stdout.splitlines()]
    kinds = [(o["type"], o.get("error") or o.get("text") or o.get("room")) for o in objects]
    assert kinds == [
        ("joined", "ops"),
        ("msg", "hello"),
        ("error", "chat.no_such_nick"),
        ("nick", "ops"),
        ("error", "usage"),
        ("left", "ops"),
        ("joined", "other"),
        ("msg", "there"),
    ]
    msg = objects[1]
    assert (msg["from"], msg["room"], msg["seq"]) == ("j", "ops", 1)


def test_piped_chat_more_pages_back(srv: RunningServer) -> None:
    with Client.connect(srv.address) as c:
        c.join("old", "earlier")
        for n in range(1, 11):
            c.say("old", f"m{n}")
    lines = "/more 3\n/more 3\n/more\n/more\n/more x\n"
    done = run(srv, "chat", "--json", "-r", "old", "-n", "j", "--history", "2", stdin=lines)
    assert done.returncode == 1  # /more x is a usage error
    objects = [json.loads(line) for line in done.stdout.splitlines()]
    shown = [o["seq"] if o["type"] == "msg" else (o["type"], o.get("more")) for o in objects]
    assert shown == [
        9,
        10,
        ("joined", None),
        *(6, 7, 8, ("history", True)),
        *(3, 4, 5, ("history", True)),
        *(1, 2, ("history", False)),
        ("history", False),  # nothing older: still an answer
        ("error", None),
    ]
    assert all(o["history"] for o in objects if o["type"] == "msg")


def test_piped_chat_listens_until_stopped(srv: RunningServer) -> None:
    proc = subprocess.Popen(
        [*SOCKHUB, "chat", "--json", "--listen", "-r", "radio", "-n", "ear", "-s", srv.address],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    try:
        assert proc.stdout is not None
        assert json.loads(proc.stdout.readline())["type"] == "joined"
        with Client.connect(srv.address) as c:
            c.join("radio", "voice")
            c.say("radio", "on air")
            event = json.loads(proc.stdout.readline())
            assert (event["type"], event["event"], event["nick"]) == ("event", "join", "voice")
            assert json.loads(proc.stdout.readline())["text"] == "on air"
    finally:
        proc.terminate()
        proc.wait(10)


def test_cannot_connect_is_exit_3(srv: RunningServer) -> None:
    done = run(srv, "chat", "-n", "x", server="127.0.0.1:1", stdin="hi\n")
    assert done.returncode == 3 and "cannot connect" in done.stderr
