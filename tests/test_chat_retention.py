"""Chat against an anonymous flood: paged lists, rate limits, a history budget, idle rooms."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

import msgspec
import pytest

from sockhub import Client
from sockhub.protocol.errors import LimitRate

from .conftest import running_server
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
