"""``chat.say`` with a nick from outside the room: the members see one message, no event."""

from __future__ import annotations

from pathlib import Path

import pytest

from sockhub import AsyncClient, Client
from sockhub.client.chat import ChatEvent, ChatMessage
from sockhub.protocol.errors import BadRequest, ChatBadName, ChatNickTaken, LimitRate

from .conftest import RunningServer, running_server
from .test_chat_service import ChatPeer

END = "end of test"


def _until_end(member: Client) -> list[ChatMessage | ChatEvent]:
    """What reached ``member`` before its own closing line (which proves nothing is late)."""
    member.say("news", END)
    seen: list[ChatMessage | ChatEvent] = []
    while not isinstance(item := member.next_chat(5), ChatMessage) or item.text != END:
        seen.append(item)
    return seen


def test_members_see_exactly_one_message_and_no_event(srv: RunningServer) -> None:
    with Client.connect(srv.address) as member, Client.connect(srv.address) as bot:
        member.join("news", "reader")
        assert bot.say("news", "deployed", nick="ci") == 1
        [said] = _until_end(member)
        assert isinstance(said, ChatMessage)
        assert (said.room, said.sender, said.text, said.seq) == ("news", "ci", "deployed", 1)
        assert member.who("news") == ["reader"]  # the sender never became a member
        with Client.connect(srv.address) as late:
            history = late.join("news", "late", history=10).history
            assert [(m.sender, m.text) for m in history] == [("ci", "deployed"), ("reader", END)]


async def test_the_async_client_speaks_unannounced(srv: RunningServer) -> None:
    async with (
        await AsyncClient.connect(srv.address) as member,
        await AsyncClient.connect(srv.address) as bot,
    ):
        await member.join("news", "reader")
        assert await bot.say("news", "one", nick="ci") == 1
        assert await bot.say("news", "two", nick="ci") == 2
        await member.say("news", END)
        seen = [await member.next_chat(5) for _ in range(3)]
        assert [(type(i), getattr(i, "text", None)) for i in seen] == [
            (ChatMessage, "one"),
            (ChatMessage, "two"),
            (ChatMessage, END),
        ]


def test_the_nick_is_checked_as_a_join_checks_it(srv: RunningServer) -> None:
    key = srv.add_user("ann", ("chat",))
    with Client.connect(srv.address) as member, Client.connect(srv.address) as bot:
        member.join("news", "reader")
        with pytest.raises(ChatNickTaken):
            bot.say("news", "as you", nick="READER")  # held in the room, compared like nicks
        with pytest.raises(ChatNickTaken):
            bot.say("news", "as ann", nick="ann")  # a registered name
        with pytest.raises(ChatBadName):
            bot.say("news", "spaced", nick="two words")
        with pytest.raises(BadRequest):
            member.say("news", "a member says without a nick", nick="other")
        assert bot.say("elsewhere", "an empty room keeps it", nick="reader") == 1
        with Client.connect(srv.address, user="ann", key=key) as ann:
            assert ann.say("news", "my own name", nick="ann") == 1
        said = [i for i in _until_end(member) if isinstance(i, ChatMessage)]
        assert [(m.sender, m.text) for m in said] == [("ann", "my own name")]


def test_unannounced_messages_keep_their_order_on_the_wire(srv: RunningServer) -> None:
    with Client.connect(srv.address) as member:
        member.join("news", "reader")
        peer = ChatPeer(srv.port)
        try:
            for n in range(1, 21):  # pipelined: every request before any reply
                body = str(n).encode()
                peer.request({"op": "chat.say", "id": n, "room": "news", "nick": "ci"}, body)
                peer.request({"op": "chat.say", "id": n + 100, "room": "news", "nick": "ci2"}, b"-")
            replies = [peer.frame().header for _ in range(40)]
        finally:
            peer.close()
        assert sorted(r["re"] for r in replies) == [*range(1, 21), *range(101, 121)]
        said = _until_end(member)
        assert all(isinstance(m, ChatMessage) for m in said)
        texts = [m.text for m in said if isinstance(m, ChatMessage) and m.sender == "ci"]
        assert texts == [str(n) for n in range(1, 21)]
        assert [m.seq for m in said if isinstance(m, ChatMessage)] == list(range(1, 41))


def test_anonymous_rate_limits_apply(tmp_path: Path) -> None:
    limits = {"chat_anon_per_sec": 0.001, "chat_anon_burst": 2}
    with running_server(tmp_path / "data", **limits) as srv, Client.connect(srv.address) as bot:
        assert [bot.say("news", f"{n}", nick="ci") for n in range(2)] == [1, 2]
        with pytest.raises(LimitRate) as info:
            bot.say("news", "one too many", nick="ci")
        assert info.value.retry_after is not None and info.value.retry_after > 0
