"""The course chat bridge across a restart of the sockhub server: course clients and
sockhub members get every message once, in order, before, during and after."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from sockhub.client.chat import ChatMessage
from sockhub.client.chat_session import ChatSession, Incoming, Notice
from sockhub.lab.limits import LabLimits

from .conftest import running_server
from .lab_support import lab, program


def texts(got: list[Incoming]) -> list[str]:
    """What course clients said, as the sockhub member saw it (``ip:port text``)."""
    return [
        m.text.split(" ", 1)[-1]
        for m in got
        if isinstance(m, ChatMessage) and m.sender == "course-lab"
    ]


def until(events: object, got: list[Incoming], done: object) -> None:
    for item in events:  # type: ignore[attr-defined]
        got.append(item)
        if done(got):  # type: ignore[operator]
            return
    raise AssertionError(f"the events ended early: {got}")


def test_bridge_and_member_survive_a_server_restart(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="sockhub.lab")
    data = tmp_path / "data"
    with running_server(data) as first:
        port = first.port
        address = first.address
        member = ChatSession(address, retry_delays=(0.05,)).connect()
        member.join("lab", "bob")
        events = member.events(timeout=15)
        got: list[Incoming] = []
        with lab(
            server=address,
            only=("chat",),
            bridge_retry=(0.05,),
            limits=LabLimits(bridge_backlog=1),
        ) as running:
            course = program("a362_chat_client", running.port("chat"), tmp_path)
            with course as student:
                running.wait_members("chat", 1)
                student.feed("course-before\n")
                until(events, got, lambda g: "course-before" in texts(g))
                member.say("lab", "hub-before")
                student.wait_for("bob hub-before")

                first.stop()  # the sockhub server goes away under both
                until(events, got, lambda g: isinstance(g[-1], Notice))
                for text in ("course-during", "course-queued", "course-dropped"):
                    student.feed(f"{text}\n")  # kept by the bridge until sockhub is back,
                    student.wait_for(text)  # one in hand and bridge_backlog=1 waiting
                running.wait_logged(caplog, "backlog is full (bridge_backlog 1)")
                with running_server(data, port=port):
                    until(events, got, lambda g: g[-1] == Notice("reconnected", g[-1].text))  # type: ignore[union-attr]
                    member.say("lab", "hub-after")
                    student.feed("course-after\n")
                    until(events, got, lambda g: "course-after" in texts(g))
                    student.wait_for("bob hub-after")
                    out = student.text
        member.close()
    assert texts(got) == ["course-before", "course-during", "course-queued", "course-after"]
    assert out.count("bob hub-before") == 1 and out.count("bob hub-after") == 1
    assert out.index("bob hub-before") < out.index("bob hub-after")
