"""Chat on both clients, and reconnecting sessions that rejoin with ``since``.

A real TCP relay between a session and the server plays the network: the test cuts
it and lets it back up, so the reconnect path runs for real and deterministically.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from sockhub import AsyncClient, Client
from sockhub.client.chat import ChatEvent, ChatMessage, parse_push
from sockhub.client.chat_session import AsyncChatSession, ChatSession, ChatState, Notice
from sockhub.client.common import Reply
from sockhub.protocol.errors import ChatNotJoined

from .conftest import RunningServer, running_server


class Relay:
    """A loopback TCP relay to ``port`` that the test can take down and bring back up."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.up = threading.Event()
        self.up.set()
        self.pairs: list[tuple[socket.socket, socket.socket]] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.up.is_set():
                client.close()  # down: the connection opens and closes before any hello
                continue
            server = socket.create_connection(("127.0.0.1", self.target))
            with self.lock:
                self.pairs.append((client, server))
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def down(self) -> None:
        """Cut every relayed connection and refuse new ones."""
        self.up.clear()
        with self.lock:
            pairs, self.pairs = self.pairs, []
        for pair in pairs:
            for s in pair:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.down()
        self.listener.close()


@contextlib.contextmanager
def relay(port: int) -> Iterator[Relay]:
    r = Relay(port)
    try:
        yield r
    finally:
        r.close()


def test_sync_client_chat_api(srv: RunningServer) -> None:
    with Client.connect(srv.address) as a, Client.connect(srv.address) as b:
        assert a.join("lobby", "alice").members == ["alice"]
        assert a.say("lobby", "hello") == 1
        joined = b.join("lobby", "bob", history=5)
        assert (joined.room, joined.nick, joined.members, joined.seq) == (
            "lobby",
            "bob",
            ["alice", "bob"],
            1,
        )
        old = joined.history[0]
        assert (old.room, old.sender, old.text, old.seq, old.history) == (
            "lobby",
            "alice",
            "hello",
            1,
            True,
        )
        assert b.who("lobby") == ["alice", "bob"]
        assert [(r.room, r.members) for r in b.rooms()] == [("lobby", 2)]
        own = a.next_chat(5)  # the sender receives its own message too
        assert isinstance(own, ChatMessage) and (own.text, own.history) == ("hello", False)
        event = a.next_chat(5)
        assert isinstance(event, ChatEvent) and (event.event, event.nick) == ("join", "bob")
        b.dm("alice", "psst")
        dm = a.next_chat(5)
        assert isinstance(dm, ChatMessage) and (dm.dm, dm.to, dm.text) == (True, "alice", "psst")
        b.nick("lobby", "robert")
        b.leave("lobby")
        events = [e for e in a.chat_events(timeout=0.5) if isinstance(e, ChatEvent)]
        assert [(e.event, e.nick) for e in events] == [
            ("nick", "robert"),
            ("leave", "robert"),
        ]
        with pytest.raises(TimeoutError):
            a.next_chat(0.1)
        with pytest.raises(ChatNotJoined):
            b.say("lobby", "gone")


async def test_async_client_chat_api(srv: RunningServer) -> None:
    async with (
        await AsyncClient.connect(srv.address) as a,
        await AsyncClient.connect(srv.address) as b,
    ):
        await a.join("lobby", "alice")
        await b.join("lobby", "bob")
        assert await b.say("lobby", "hi") == 1
        seen = [await a.next_chat(5), await a.next_chat(5)]
        assert isinstance(seen[0], ChatEvent) and isinstance(seen[1], ChatMessage)
        assert seen[1].text == "hi" and seen[1].sender == "bob"
        assert await a.who("lobby") == ["alice", "bob"]
        assert [r.room for r in await a.rooms()] == ["lobby"]
        await a.nick("lobby", "al")
        await a.dm("bob", "direct")
        await a.leave("lobby")
        got = []
        async for item in b.chat_events():
            got.append(item)
            if isinstance(item, ChatEvent) and item.event == "leave":
                break
        assert [type(i).__name__ for i in got] == [
            "ChatMessage",  # its own message comes back too
            "ChatEvent",
            "ChatMessage",
            "ChatEvent",
        ]
        with pytest.raises(TimeoutError):
            await b.next_chat(0.1)


def test_pushes_from_a_hostile_server_are_read_safely() -> None:
    weird = Reply({"op": "chat.msg", "room": 5, "from": None, "seq": "7", "ts": "x"}, b"\xff")
    msg = parse_push(weird)
    assert isinstance(msg, ChatMessage)
    assert (msg.room, msg.sender, msg.seq, msg.ts, msg.text) == ("", "?", None, 0.0, "\ufffd")
    event = parse_push(Reply({"op": "chat.event", "event": 1, "old": 2}))
    assert isinstance(event, ChatEvent) and (event.event, event.old) == ("", None)
    assert parse_push(Reply({"op": "exec.out"})) is None


def test_state_drops_repeats_and_foreign_rooms() -> None:
    state = ChatState()
    assert state.accept(ChatMessage("lobby", "x", "t", 0.0, seq=1)) is False  # not joined
    from sockhub.client.chat import Joined

    old = ChatMessage("lobby", "x", "old", 0.0, seq=4, history=True)
    assert state.joined(Joined("lobby", "me", ["me"], 4, [old])) == [old]
    assert state.accept(ChatMessage("lobby", "x", "t", 0.0, seq=4)) is False
    assert state.accept(ChatMessage("lobby", "x", "t", 0.0, seq=5)) is True
    assert state.to_rejoin() == [("lobby", "me", 5)]
    repeat = ChatMessage("lobby", "x", "t", 0.0, seq=5, history=True)
    fresh = ChatMessage("lobby", "x", "t", 0.0, seq=6, history=True)
    assert state.joined(Joined("lobby", "me", ["me"], 6, [repeat, fresh])) == [fresh]
    assert state.accept(ChatEvent("lobby", "join", "y", 0.0)) is True
    assert state.accept(ChatMessage(None, "x", "t", 0.0, dm=True, to="me")) is True
    state.left("lobby")
    assert state.accept(ChatEvent("lobby", "join", "y", 0.0)) is False


def wait_event(c: Client, kind: str) -> ChatEvent:
    """The next event of ``kind`` this client receives (messages on the way are skipped)."""
    while not (isinstance(item := c.next_chat(5), ChatEvent) and item.event == kind):
        pass
    return item


def texts(items: list[object]) -> list[str]:
    return [i.text for i in items if isinstance(i, ChatMessage)]


async def test_async_session_rejoins_with_since_after_a_drop(tmp_path: Path) -> None:
    with running_server(tmp_path) as srv, relay(srv.port) as net:
        session = await AsyncChatSession(
            f"127.0.0.1:{net.port}", retry_delays=(0.02,), keepalive=False
        ).connect()
        await session.join("lobby", "alice")
        events = session.events()
        with Client.connect(srv.address) as bob:
            bob.join("lobby", "bob")
            bob.say("lobby", "m1")
            got: list[object] = []
            while "m1" not in texts(got):
                got.append(await events.__anext__())
            net.down()
            while not any(isinstance(i, Notice) and i.kind == "disconnected" for i in got):
                got.append(await events.__anext__())
            wait_event(bob, "leave")
            bob.say("lobby", "m2")  # said while alice is away
            bob.say("lobby", "m3")
            net.up.set()
            while not any(isinstance(i, Notice) and i.kind == "reconnected" for i in got):
                got.append(await events.__anext__())
            bob.say("lobby", "m4")
            while "m4" not in texts(got):
                got.append(await events.__anext__())
        assert texts(got) == ["m1", "m2", "m3", "m4"]  # nothing missed, nothing twice
        replayed = [i for i in got if isinstance(i, ChatMessage) and i.history]
        assert [m.text for m in replayed] == ["m2", "m3"]
        await events.aclose()
        await session.close()


def test_sync_session_rejoins_with_since_after_a_drop(tmp_path: Path) -> None:
    with running_server(tmp_path) as srv, relay(srv.port) as net:
        session = ChatSession(f"127.0.0.1:{net.port}", retry_delays=(0.02,)).connect()
        session.join("lobby", "alice")
        events = session.events(timeout=10)
        with Client.connect(srv.address) as bob:
            bob.join("lobby", "bob")
            bob.say("lobby", "m1")
            got: list[object] = []
            while "m1" not in texts(got):
                got.append(next(events))
            net.down()
            while not any(isinstance(i, Notice) for i in got):
                got.append(next(events))
            wait_event(bob, "leave")
            bob.say("lobby", "m2")
            net.up.set()
            while not any(isinstance(i, Notice) and i.kind == "reconnected" for i in got):
                got.append(next(events))
            bob.say("lobby", "m3")
            while "m3" not in texts(got):
                got.append(next(events))
        assert texts(got) == ["m1", "m2", "m3"]
        session.close()


async def test_a_rejoin_that_is_refused_is_reported(tmp_path: Path) -> None:
    with (
        running_server(tmp_path) as srv,
        relay(srv.port) as net,
        Client.connect(srv.address) as thief,
    ):
        session = await AsyncChatSession(
            f"127.0.0.1:{net.port}", retry_delays=(0.02,), keepalive=False
        ).connect()
        await session.join("lobby", "alice")
        thief.join("lobby", "thief")
        events = session.events()
        joined = await events.__anext__()
        assert isinstance(joined, ChatEvent) and joined.nick == "thief"
        net.down()
        assert isinstance(await events.__anext__(), Notice)
        wait_event(thief, "leave")
        thief.nick("lobby", "alice")  # takes the nick while alice is away
        net.up.set()
        got = []
        while not any(isinstance(i, Notice) and i.kind == "reconnected" for i in got):
            got.append(await events.__anext__())
        lost = [i for i in got if isinstance(i, Notice) and i.kind == "lost_room"]
        assert len(lost) == 1 and "in use" in lost[0].text
        assert session.state.rooms == {}
        await events.aclose()
        await session.close()


@pytest.mark.slow
async def test_a_quiet_listener_stays_in_the_room(tmp_path: Path) -> None:
    with running_server(tmp_path, idle_timeout=1.0) as srv:
        listener = await AsyncChatSession(srv.address).connect()
        await listener.join("lobby", "ear")
        with pytest.raises(TimeoutError):
            await listener.client.next_chat(2.5)  # idle well past the timeout; pings keep it
        with Client.connect(srv.address) as c:
            c.join("lobby", "mouth")
            assert c.who("lobby") == ["ear", "mouth"]
        await listener.close()


async def test_session_close_ends_events(srv: RunningServer) -> None:
    session = await AsyncChatSession(srv.address).connect()
    await session.join("lobby", "x")
    events = session.events()
    task = asyncio.ensure_future(events.__anext__())
    await asyncio.sleep(0)
    await session.close()
    with pytest.raises(StopAsyncIteration):
        await task
