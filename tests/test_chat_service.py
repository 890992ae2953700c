"""The chat service (PROTOCOL.md section 6) on a real server: every op and every error code."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest

from sockhub import AsyncClient, Client
from sockhub.client.chat import ChatEvent, ChatMessage
from sockhub.protocol.errors import (
    AuthRequired,
    BadRequest,
    ChatBadName,
    ChatBadText,
    ChatNickTaken,
    ChatNoSuchNick,
    ChatNotJoined,
    LimitBusy,
)
from sockhub.protocol.frames import Frame, encode_frame
from sockhub.services.chat.names import nick_key

from .conftest import UNTHROTTLED_CHAT, RawPeer, RunningServer, running_server

FULLWIDTH_ALICE = "\uff21\uff4c\uff49\uff43\uff45"
FULLWIDTH_CAROL = "\uff23\uff41\uff52\uff4f\uff4c"


class ChatPeer(RawPeer):
    """A raw peer that numbers its requests and keeps what arrives before each reply."""

    def __init__(self, port: int) -> None:
        super().__init__(port)
        self.rid = 0
        self.pushes: list[Frame] = []
        self.partial: list[Frame] = []

    def call(self, op: str, body: bytes = b"", **fields: Any) -> dict[str, Any]:
        self.rid += 1
        self.request({"op": op, "id": self.rid, **fields}, body)
        self.partial = []
        while True:
            frame = self.frame()
            if frame.header.get("re") != self.rid:
                self.pushes.append(frame)
            elif frame.header["op"] == "chat.msg":
                self.partial.append(frame)
            else:
                return frame.header

    def push(self) -> Frame:
        return self.pushes.pop(0) if self.pushes else self.frame()


def next_msg(c: Client, timeout: float = 5) -> ChatMessage:
    """The next message, skipping events."""
    while not isinstance(item := c.next_chat(timeout), ChatMessage):
        pass
    return item


def next_event(c: Client, timeout: float = 5) -> ChatEvent:
    item = c.next_chat(timeout)
    assert isinstance(item, ChatEvent), item
    return item


def test_join_say_leave_on_the_wire(srv: RunningServer) -> None:
    alice, bob = ChatPeer(srv.port), ChatPeer(srv.port)
    joined = alice.call("chat.join", room="lobby", nick="alice")
    assert joined == {
        "op": "chat.joined",
        "re": 1,
        "room": "lobby",
        "nick": "alice",
        "members": ["alice"],
        "seq": 0,
    }
    assert bob.call("chat.join", room="lobby", nick="bob")["members"] == ["alice", "bob"]
    event = alice.push().header
    assert (event["op"], event["event"], event["nick"], event["room"]) == (
        "chat.event",
        "join",
        "bob",
        "lobby",
    )
    assert "re" not in event and isinstance(event["ts"], float)

    ok = alice.call("chat.say", b"hello \t\n world", room="lobby")
    assert ok == {"op": "ok", "re": 2, "seq": 1}
    mine = alice.pushes.pop(0)  # the sender receives its own message too, before the ok
    theirs = bob.push()
    assert mine.header == theirs.header and mine.body == theirs.body == b"hello \t\n world"
    assert theirs.header["from"] == "alice" and theirs.header["seq"] == 1
    assert "re" not in theirs.header and "history" not in theirs.header

    assert bob.call("chat.leave", room="lobby") == {"op": "ok", "re": 2}
    left = alice.push().header
    assert (left["event"], left["nick"]) == ("leave", "bob")
    assert alice.call("chat.who", room="lobby") == {
        "op": "chat.who",
        "re": 3,
        "room": "lobby",
        "members": ["alice"],
    }
    assert bob.pushes == []  # the actor hears nothing of its own join or leave


def test_nick_change_who_and_rooms(srv: RunningServer) -> None:
    with Client.connect(srv.address) as a, Client.connect(srv.address) as b:
        a.join("lobby", "alice")
        a.join("dev", "alice")
        b.join("lobby", "bob")
        assert next_event(a).nick == "bob"
        b.nick("lobby", "robert")
        event = next_event(a)
        assert (event.event, event.nick, event.old) == ("nick", "robert", "bob")
        assert b.who("lobby") == ["alice", "robert"]
        assert b.say("lobby", "renamed") == 1
        assert next_msg(a).sender == "robert"
        rooms = {r.room: r.members for r in b.rooms()}
        assert rooms == {"dev": 1, "lobby": 2}
        b.nick("lobby", "ROBERT")  # its own nick in another case is fine
        with pytest.raises(ChatNickTaken):
            b.nick("lobby", "Alice")


def test_a_disconnect_leaves_every_room(srv: RunningServer) -> None:
    with Client.connect(srv.address) as a:
        a.join("one", "watcher")
        a.join("two", "watcher")
        peer = ChatPeer(srv.port)
        peer.call("chat.join", room="one", nick="gone")
        peer.call("chat.join", room="two", nick="gone")
        assert [next_event(a).event for _ in range(2)] == ["join", "join"]
        peer.close()
        left = [next_event(a) for _ in range(2)]
        assert {(e.room, e.event, e.nick) for e in left} == {
            ("one", "leave", "gone"),
            ("two", "leave", "gone"),
        }
        assert {r.room for r in a.rooms()} == {"one", "two"}
        assert a.who("one") == ["watcher"]


@pytest.mark.parametrize(
    "room", ["", "x" * 65, "has space", "slash/room", "ümlaut", "semi;colon", 5, None]
)
def test_bad_room_names(srv: RunningServer, room: Any) -> None:
    peer = ChatPeer(srv.port)
    reply = peer.call("chat.join", room=room, nick="n")
    assert reply["code"] == ("chat.bad_name" if isinstance(room, str) else "bad.request"), reply
    assert reply["fatal"] is False


def test_room_and_nick_at_their_length_limits(srv: RunningServer) -> None:
    with Client.connect(srv.address) as c:
        assert c.join("r" * 64, "n" * 32).nick == "n" * 32
        with pytest.raises(ChatBadName):
            c.join("r" * 65, "n")
        with pytest.raises(ChatBadName):
            c.join("other", "n" * 33)
        assert c.join("A-z_0.9", "ok").room == "A-z_0.9"


@pytest.mark.parametrize(
    "nick", ["", "two words", "tab\there", "bell\x07", "zero\u200bwidth", "bidi\u202eevil", "a\n"]
)
def test_bad_nicks(srv: RunningServer, nick: str) -> None:
    with Client.connect(srv.address) as c:
        with pytest.raises(ChatBadName):
            c.join("lobby", nick)
        c.join("lobby", "fine")
        with pytest.raises(ChatBadName):
            c.nick("lobby", nick)
        with pytest.raises(ChatBadName):
            c.dm(nick, "hi")


def test_nicks_compare_after_nfkc_and_case_folding(srv: RunningServer) -> None:
    assert nick_key(FULLWIDTH_ALICE) == nick_key("ALICE") == nick_key("alice")
    assert nick_key("Straße") == nick_key("STRASSE")
    with Client.connect(srv.address) as a, Client.connect(srv.address) as b:
        a.join("lobby", "alice")
        for taken in ("ALICE", FULLWIDTH_ALICE, "aLiCe"):
            with pytest.raises(ChatNickTaken):
                b.join("lobby", taken)
        assert b.join("lobby", "alice2").nick == "alice2"
        assert b.join("elsewhere", "alice").nick == "alice"  # nicks are per room


def test_registered_names_are_reserved(srv: RunningServer) -> None:
    key = srv.add_user("carol", ("chat",))
    with Client.connect(srv.address) as anon:
        for name in ("carol", "CAROL", FULLWIDTH_CAROL):
            with pytest.raises(ChatNickTaken):
                anon.join("lobby", name)
        anon.join("lobby", "anon")
        with pytest.raises(ChatNickTaken):
            anon.nick("lobby", "Carol")
        with Client.connect(srv.address, user="carol", key=key) as carol:
            joined = carol.join("lobby")  # a user's nick defaults to its name
            assert joined.nick == "carol" and joined.members == ["anon", "carol"]
            assert carol.join("dev", "c-at-work").nick == "c-at-work"


def test_anonymous_join_needs_a_nick(srv: RunningServer) -> None:
    peer = ChatPeer(srv.port)
    reply = peer.call("chat.join", room="lobby")
    assert reply["code"] == "bad.request" and "nick" in reply["message"]


def test_chat_needs_the_grant(tmp_path: Path) -> None:
    with running_server(tmp_path, anonymous_grants="echo,time") as server:
        with Client.connect(server.address) as c:
            with pytest.raises(AuthRequired):
                c.join("lobby", "x")
            with pytest.raises(AuthRequired):
                c.rooms()


def test_ops_on_rooms_not_joined(srv: RunningServer) -> None:
    with Client.connect(srv.address) as c:
        with pytest.raises(ChatNotJoined):
            c.dm("anyone", "hello")  # a sender in no room
        c.join("lobby", "me")
        with pytest.raises(ChatNotJoined):
            c.say("other", "x")
        with pytest.raises(ChatNotJoined):
            c.leave("other")
        with pytest.raises(ChatNotJoined):
            c.nick("other", "x")
        with pytest.raises(ChatNotJoined):
            c.who("other")
        with pytest.raises(ChatBadName):
            c.say("bad room", "x")
        c.leave("lobby")
        with pytest.raises(ChatNotJoined):
            c.say("lobby", "gone")


def test_text_rules(srv: RunningServer) -> None:
    with Client.connect(srv.address) as c:
        c.join("lobby", "me")
        assert c.say("lobby", "x" * 16384) == 1  # exactly the limit
        with pytest.raises(ChatBadText, match="16385"):
            c.say("lobby", "x" * 16385)
        assert c.say("lobby", "é" * 8192) == 2  # 16384 bytes of two-byte characters
        for bad in (b"\xff\xfe", b"esc \x1b[2J", b"nul \x00", b"del \x7f", "c1 \x9b".encode()):
            with pytest.raises(ChatBadText):
                c.say("lobby", bad)
            with pytest.raises(ChatBadText):
                c.dm("me", bad)
        assert c.say("lobby", "tab\tand\nnewline") == 3
        assert c.say("lobby", "") == 4
        texts = [m.text for m in c.chat_events(timeout=0.5) if isinstance(m, ChatMessage)]
        assert texts == ["x" * 16384, "é" * 8192, "tab\tand\nnewline", ""]


def test_bad_request_fields(srv: RunningServer) -> None:
    peer = ChatPeer(srv.port)
    for fields, word in [
        ({"room": "lobby", "nick": "x", "history": -1}, "history"),
        ({"room": "lobby", "nick": "x", "history": 1001}, "history"),
        ({"room": "lobby", "nick": "x", "history": "10"}, "history"),
        ({"room": "lobby", "nick": "x", "since": -1}, "since"),
        ({"room": "lobby", "nick": "x", "since": 1.5}, "since"),
        ({"room": "lobby", "nick": 7}, "nick"),
    ]:
        reply = peer.call("chat.join", **fields)
        assert reply["code"] == "bad.request" and word in reply["message"], reply
    assert peer.call("chat.join", room="lobby", nick="x", history=1000)["op"] == "chat.joined"
    again = peer.call("chat.join", room="lobby", nick="y")
    assert again["code"] == "bad.request" and "already" in again["message"]
    assert peer.call("chat.dm", b"x")["code"] == "bad.request"
    assert peer.call("chat.say", b"x")["code"] == "bad.request"


def test_rooms_per_connection_limit(tmp_path: Path) -> None:
    with running_server(tmp_path, chat_rooms_per_connection=3) as server:
        with Client.connect(server.address) as c:
            for n in range(3):
                c.join(f"room{n}", "me")
            with pytest.raises(LimitBusy):
                c.join("room3", "me")
            c.leave("room0")
            assert c.join("room3", "me").room == "room3"


def test_direct_messages(srv: RunningServer) -> None:
    key = srv.add_user("dave", ("chat",))
    with (
        Client.connect(srv.address) as anon,
        Client.connect(srv.address, user="dave", key=key) as dave,
        Client.connect(srv.address) as other,
    ):
        anon.join("lobby", "anon")
        anon.join("dev", "anon-dev")
        dave.join("lobby", "d")
        dave.join("dev", "d")  # one connection in two rooms gets one copy
        other.join("lobby", "x")
        anon.dm("DAVE", "by user name")
        msg = next_msg(dave)
        assert msg.dm
        assert (msg.room, msg.sender, msg.to, msg.text, msg.seq) == (
            None,
            "anon",  # an anonymous sender is named by its first room's nick
            "DAVE",
            "by user name",
            None,
        )
        dave.dm("anon-dev", "by nick in another room")
        back = next_msg(anon)
        assert (back.sender, back.to, back.text) == (
            "dave",  # an authenticated sender by its user name
            "anon-dev",
            "by nick in another room",
        )
        anon.dm("d", "once")
        assert next_msg(dave).text == "once"
        with pytest.raises(TimeoutError):
            next_msg(dave, 0.3)  # one copy, though dave holds "d" in two rooms
        with pytest.raises(ChatNoSuchNick):
            anon.dm("nobody", "hello?")
        with pytest.raises(TimeoutError):
            next_msg(other, 0.3)  # no direct message reached x


def test_history_on_join(srv: RunningServer) -> None:
    with Client.connect(srv.address) as c:
        c.join("lobby", "writer")
        for n in range(1, 11):
            assert c.say("lobby", f"m{n}") == n
    peer = ChatPeer(srv.port)
    joined = peer.call("chat.join", room="lobby", nick="reader", history=3)
    assert joined["seq"] == 10
    assert [f.body for f in peer.partial] == [b"m8", b"m9", b"m10"]
    for frame in peer.partial:
        assert frame.header["history"] is True and frame.header["re"] == 1
        assert frame.header["room"] == "lobby" and frame.header["from"] == "writer"
    assert [f.header["seq"] for f in peer.partial] == [8, 9, 10]
    peer.call("chat.leave", room="lobby")
    peer.call("chat.join", room="lobby", nick="reader", since=7, history=1)  # since wins
    assert [f.body for f in peer.partial] == [b"m8", b"m9", b"m10"]
    peer.call("chat.leave", room="lobby")
    assert peer.call("chat.join", room="lobby", nick="reader", since=10)["seq"] == 10
    assert peer.partial == []
    peer.call("chat.leave", room="lobby")
    peer.call("chat.join", room="lobby", nick="reader")  # history defaults to 0
    assert peer.partial == []


def test_history_is_bounded_per_room(tmp_path: Path) -> None:
    with running_server(tmp_path, chat_history_keep=5) as server:
        with Client.connect(server.address) as c:
            c.join("a", "w")
            c.join("b", "w")
            for n in range(1, 9):
                c.say("a", f"a{n}")
            c.say("b", "b1")
            c.leave("a")
            joined = c.join("a", "w", since=0)
            assert [m.text for m in joined.history] == ["a4", "a5", "a6", "a7", "a8"]
            assert joined.seq == 8
            assert [m.text for m in c.join("x", "w", history=100).history] == []
            c.leave("b")
            assert [m.text for m in c.join("b", "w", history=100).history] == ["b1"]


def test_history_survives_a_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with running_server(data) as first:
        with Client.connect(first.address) as c:
            c.join("lobby", "w")
            seqs = [c.say("lobby", f"before {n}") for n in range(5)]
    assert seqs == [1, 2, 3, 4, 5]
    with running_server(data) as second:
        with Client.connect(second.address) as c:
            joined = c.join("lobby", "w", since=2)
            assert [(m.seq, m.text) for m in joined.history] == [
                (3, "before 2"),
                (4, "before 3"),
                (5, "before 4"),
            ]
            assert joined.seq == 5
            assert c.say("lobby", "after") == 6  # numbering goes on, never restarts
    assert (data / "chat.sqlite3").exists()
    assert (data / "chat.sqlite3-wal").exists() or (data / "chat.sqlite3").stat().st_size


async def test_ordering_under_concurrent_senders(tmp_path: Path) -> None:
    with running_server(tmp_path, **UNTHROTTLED_CHAT) as srv:
        await _ordering(srv)


async def _ordering(srv: RunningServer) -> None:
    senders, per_sender = 4, 150
    readers = [await AsyncClient.connect(srv.address) for _ in range(3)]
    writers = [await AsyncClient.connect(srv.address) for _ in range(senders)]
    try:
        for n, r in enumerate(readers):
            await r.join("race", f"reader{n}")
        for n, w in enumerate(writers):
            await w.join("race", f"writer{n}")

        async def send_all(n: int, w: AsyncClient) -> list[int]:
            # all in flight at once (pipelined), from every writer at the same time
            futures = [
                w.request("chat.say", f"{n}:{i}".encode(), room="race") for i in range(per_sender)
            ]
            return [(await f).header["seq"] for f in futures]

        acked = await asyncio.gather(*(send_all(n, w) for n, w in enumerate(writers)))
        for seqs in acked:
            assert seqs == sorted(seqs)  # a connection's messages keep their order
        total = senders * per_sender
        assert sorted(s for seqs in acked for s in seqs) == list(range(1, total + 1))

        async def received(r: AsyncClient) -> list[tuple[int, str]]:
            got: list[tuple[int, str]] = []
            while len(got) < total:
                item = await r.next_chat(10)
                if isinstance(item, ChatMessage) and item.seq is not None:
                    got.append((item.seq, item.text))
            return got

        views = await asyncio.gather(*(received(r) for r in readers))
        assert views[0] == views[1] == views[2]  # one order for every member
        assert [seq for seq, _ in views[0]] == list(range(1, total + 1))
        for n in range(senders):
            mine = [text for _, text in views[0] if text.startswith(f"{n}:")]
            assert mine == [f"{n}:{i}" for i in range(per_sender)]
    finally:
        for c in readers + writers:
            await c.close()


def test_join_and_say_pipelined_in_one_write(srv: RunningServer) -> None:
    with Client.connect(srv.address) as watcher:
        watcher.join("pipe", "watcher")
        peer = ChatPeer(srv.port)
        peer.send(
            encode_frame({"op": "chat.join", "id": 1, "room": "pipe", "nick": "fast"})
            + encode_frame({"op": "chat.say", "id": 2, "room": "pipe"}, b"first")
            + encode_frame({"op": "chat.say", "id": 3, "room": "pipe"}, b"second")
        )
        frames = [peer.frame().header for _ in range(5)]
        assert frames[0]["op"] == "chat.joined"
        said = [f for f in frames if f["op"] == "ok"]
        assert [f["re"] for f in said] == [2, 3] and [f["seq"] for f in said] == [1, 2]
        texts = [m.text for m in watcher.chat_events(timeout=0.5) if isinstance(m, ChatMessage)]
        assert texts == ["first", "second"]


def test_join_say_leave_pipelined_keep_their_order(srv: RunningServer) -> None:
    with Client.connect(srv.address) as watcher:
        watcher.join("pipe", "watcher")
        peer = ChatPeer(srv.port)
        peer.send(
            encode_frame({"op": "chat.join", "id": 1, "room": "pipe", "nick": "brief"})
            + b"".join(
                encode_frame({"op": "chat.say", "id": n, "room": "pipe"}, b"%d" % n)
                for n in range(2, 6)
            )
            + encode_frame({"op": "chat.leave", "id": 6, "room": "pipe"})
            + encode_frame({"op": "chat.say", "id": 7, "room": "pipe"}, b"too late")
        )
        replies = {}
        while len(replies) < 7:
            header = peer.frame().header
            if "re" in header:
                replies[header["re"]] = header
        assert replies[1]["op"] == "chat.joined"
        assert [replies[n]["seq"] for n in range(2, 6)] == [1, 2, 3, 4]
        assert replies[6]["op"] == "ok" and replies[7]["code"] == "chat.not_joined"
        heard = list(watcher.chat_events(timeout=0.5))
        assert [
            (type(i).__name__, getattr(i, "text", getattr(i, "event", None))) for i in heard
        ] == [
            ("ChatEvent", "join"),
            ("ChatMessage", "2"),
            ("ChatMessage", "3"),
            ("ChatMessage", "4"),
            ("ChatMessage", "5"),
            ("ChatEvent", "leave"),
        ]


def test_server_logs_escape_client_text(
    srv: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="sockhub.chat")
    with Client.connect(srv.address) as c:
        c.join("lobby", "back\\slash")
        c.leave("lobby")
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name == "sockhub.chat")
    assert "back\\\\slash" in logged


def test_unknown_chat_op_and_bad_input_do_not_hurt_the_server(srv: RunningServer) -> None:
    peer = ChatPeer(srv.port)
    assert peer.call("chat.nope")["code"] == "op.unknown"
    assert peer.call("chat.rooms")["rooms"] == []
    with pytest.raises(BadRequest):
        with Client.connect(srv.address) as c:
            c.request("chat.join", room="lobby", nick="x", since="yesterday")
    with Client.connect(srv.address) as c:
        assert c.rooms() == []
