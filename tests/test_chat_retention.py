"""Chat against an anonymous flood: paged lists, rate limits, a history budget, idle rooms."""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import msgspec
import pytest

from sockhub import AsyncClient, Client
from sockhub.protocol.errors import LimitRate
from sockhub.services.chat.service import HISTORY_FILE

from .conftest import UNTHROTTLED_CHAT, RunningServer, running_server
from .test_chat_service import ChatPeer

MAX_HEADER = 2048
LONG = "r" * 60


def test_rooms_and_members_are_paged_under_max_header(tmp_path: Path) -> None:
    with running_server(tmp_path / "data", max_header=MAX_HEADER) as srv, ExitStack() as stack:
        rooms = [f"{LONG}{i:03d}" for i in range(90)]
        nicks = [f"{'n' * 28}{i:03d}" for i in range(40)]
        clients = [stack.enter_context(Client.connect(srv.address)) for _ in nicks]
        for c, nick in zip(clients, nicks, strict=True):
            c.join("big", nick=nick)
        for i, room in enumerate(rooms):
            clients[i % 2].join(room, nick=nicks[i % 2])
        peer = ChatPeer(srv.port)
        try:
            first = peer.call("chat.rooms")
            assert len(msgspec.json.encode(first)) <= MAX_HEADER and first["more"] is True
            peer.call("chat.join", room="big", nick="watcher")
            who = peer.call("chat.who", room="big")
            assert len(msgspec.json.encode(who)) <= MAX_HEADER and who["more"] is True
            again = peer.call("chat.who", room="big", after=who["members"][-1])
            assert again["members"][0] > who["members"][-1]
            peer.call("chat.leave", room="big")
        finally:
            peer.close()
        listed = clients[0].rooms()
        assert [r.room for r in listed] == sorted(["big", *rooms])
        assert {r.room: r.members for r in listed}["big"] == 40
        assert clients[0].who("big") == sorted(nicks)


def test_anonymous_senders_are_rate_limited_per_connection_and_address(tmp_path: Path) -> None:
    limits = {
        "chat_anon_per_sec": 0.001,
        "chat_anon_burst": 3,
        "chat_anon_per_ip_per_sec": 0.001,
        "chat_anon_per_ip_burst": 5,
    }
    with running_server(tmp_path / "data", **limits) as srv:
        key = srv.add_user("ann", ("chat",))
        with Client.connect(srv.address) as a, Client.connect(srv.address) as b:
            a.join("lobby", nick="a")
            b.join("lobby", nick="b")
            assert [a.say("lobby", f"{n}") for n in range(3)] == [1, 2, 3]
            with pytest.raises(LimitRate) as info:
                a.say("lobby", "one too many")  # this connection's burst is spent
            assert info.value.retry_after is not None and info.value.retry_after > 0
            b.say("lobby", "4")
            b.say("lobby", "5")
            with pytest.raises(LimitRate):
                b.dm("a", "the address's burst is spent too")
            with Client.connect(srv.address, user="ann", key=key) as user:
                user.join("lobby")
                assert user.say("lobby", "a user is not limited") == 6
        peer = ChatPeer(srv.port)
        try:
            peer.call("chat.join", room="lobby", nick="raw")
            refused = peer.call("chat.say", b"x", room="lobby", size=1)
            assert refused["code"] == "limit.rate" and refused["retry_after"] > 0
        finally:
            peer.close()


def _history(data: Path) -> list[tuple[str, int]]:
    with sqlite3.connect(data / HISTORY_FILE) as db:
        return db.execute("SELECT room, seq FROM messages ORDER BY rowid").fetchall()


def test_the_history_has_a_total_budget_oldest_first(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with running_server(data, chat_history_max_messages=50, **UNTHROTTLED_CHAT) as srv:
        with Client.connect(srv.address) as c:
            for room in ("a", "b", "c"):
                c.join(room, nick="flood")
                for n in range(30):
                    c.say(room, f"{room}{n}")
            kept = _history(data)
            assert len(kept) == 50 and kept[0] == ("b", 11) and kept[-1] == ("c", 30)
            assert [m.seq for m in c.join("d", nick="late", history=5).history] == []
    big = "x" * 1000
    with running_server(data, chat_history_max_bytes=20_000, **UNTHROTTLED_CHAT) as srv:
        with Client.connect(srv.address) as c:
            c.join("e", nick="flood")
            for _ in range(40):
                c.say("e", big)
        kept = _history(data)
        assert 10 <= len(kept) < 20 and kept[-1] == ("e", 40)  # ~1,040 bytes a row


def _chat(srv: RunningServer) -> Any:
    assert srv.server is not None
    return next(s for s in srv.server.services if s.name == "chat")


def test_empty_idle_rooms_are_forgotten_and_not_reloaded(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with running_server(data, **UNTHROTTLED_CHAT) as srv, Client.connect(srv.address) as c:
        for n in range(20):
            c.join(f"gone{n}", nick="x")
            c.say(f"gone{n}", "hi")
            c.leave(f"gone{n}")
    assert len(_history(data)) == 20
    with running_server(data, chat_room_idle=0.001) as srv:  # idle at start: forgotten
        assert _history(data) == []
        with Client.connect(srv.address) as c:
            assert c.join("gone3", nick="x").seq == 0  # numbering starts again
            c.say("gone3", "back")
            c.join("other", nick="x")
            c.say("other", "bye")
            c.leave("other")
            forgotten: list[str] = []
            while not forgotten:  # "other" is idle once chat_room_idle has passed
                forgotten = asyncio.run_coroutine_threadsafe(
                    _chat(srv).broker.forget_idle(), srv.loop
                ).result(timeout=30)
            assert forgotten == ["other"]  # gone3 has a member: kept
            assert _history(data) == [("gone3", 1)]


async def test_the_joined_reply_is_paged_and_both_clients_gather_the_rest(tmp_path: Path) -> None:
    nicks = [f"{'m' * 29}{i:03d}" for i in range(70)]  # 32 characters each: over 2 KiB
    with running_server(tmp_path / "data", max_header=MAX_HEADER) as srv, ExitStack() as stack:
        for nick in nicks:
            stack.enter_context(Client.connect(srv.address)).join("crowd", nick=nick)
        peer = ChatPeer(srv.port)
        try:
            joined = peer.call("chat.join", room="crowd", nick="raw")
            assert len(msgspec.json.encode(joined)) <= MAX_HEADER
            assert joined["op"] == "chat.joined" and joined["members_more"] is True
            assert joined["members"] == sorted(joined["members"])
        finally:
            peer.close()
        with Client.connect(srv.address) as c:
            assert c.join("crowd", nick="sync").members == sorted([*nicks, "sync"])
        async with await AsyncClient.connect(srv.address) as a:
            assert (await a.join("crowd", nick="async")).members == sorted([*nicks, "async"])
