"""Output of one session: file bodies queue in order, and only the slow are cut off.

Each test here failed on the server before ``ServerSession``: two ``file.get`` in flight
corrupted the stream, and a burst (id-less says, a long history replay) reset clients
that read as fast as they could.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
from pathlib import Path

import pytest

from sockhub import AsyncClient
from sockhub.cli.main import main
from sockhub.client.chat import ChatMessage
from sockhub.client.common import Reply
from sockhub.protocol.frames import encode_frame

from .conftest import UNTHROTTLED_CHAT, RawPeer, running_server
from .files_support import USER, files_server

MiB = 1024 * 1024
TEXT = 16 * 1024  # chat_text_max


def test_get_r_of_many_megabyte_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``sockhub get -r`` pipelines 40 file.get on one connection: the bodies leave one
    after another, each behind its own header."""
    with files_server(tmp_path / "data") as (srv, key):
        root = srv.data / "files" / "many"
        root.mkdir(parents=True)
        for n in range(40):
            (root / f"f{n:02}").write_bytes(os.urandom(MiB))
        monkeypatch.setenv("SOCKHUB_KEY", base64.b64encode(key).decode())
        monkeypatch.setenv("SOCKHUB_USER", USER)
        monkeypatch.setenv("SOCKHUB_SERVER", srv.address)
        monkeypatch.chdir(tmp_path)
        code = main(["get", "--json", "-r", "many", "copy/"])
        out, err = capsys.readouterr()
        assert code == 0, err
        assert len([json.loads(line) for line in out.splitlines()]) == 40
        for n in range(40):
            name = f"f{n:02}"
            assert (tmp_path / "copy" / "many" / name).read_bytes() == (root / name).read_bytes()


def _discard(sock: socket.socket) -> None:
    while sock.recv(1 << 20):
        pass
    sock.close()


async def test_id_less_burst_does_not_reset_members_that_read(tmp_path: Path) -> None:
    """One anonymous connection writes 10 MiB of id-less chat.say at once (more than any
    one batch may hold); every member that reads (the loud one too) gets every message."""
    count = 640
    with running_server(tmp_path, **UNTHROTTLED_CHAT) as srv:
        readers = [await AsyncClient.connect(srv.address) for _ in range(3)]
        try:
            for n, r in enumerate(readers):
                await r.join("burst", f"reader{n}")
            loud = socket.create_connection(("127.0.0.1", srv.port))
            loud.sendall(encode_frame({"op": "chat.join", "id": 1, "room": "burst", "nick": "x"}))
            text = b"y" * TEXT
            burst = encode_frame({"op": "chat.say", "room": "burst"}, text) * count
            loop = asyncio.get_running_loop()
            sender = loop.run_in_executor(None, loud.sendall, burst)
            reading = loop.run_in_executor(None, _discard, loud)

            async def everything(r: AsyncClient) -> int:
                got = 0
                while got < count:
                    item = await r.next_chat(30)
                    if isinstance(item, ChatMessage):
                        got += 1
                return got

            results = await asyncio.gather(*(everything(r) for r in readers))
            await sender
            assert results == [count] * 3
            loud.shutdown(socket.SHUT_WR)
            await reading
        finally:
            for r in readers:
                await r.close()


async def test_long_history_replay_paced_by_reading(tmp_path: Path) -> None:
    """A join (or a scroll-back) replaying more history than the hard output limit
    succeeds: the replay is sent a page at a time as the client reads."""
    messages = 200  # 3.2 MiB of history against a 1 MiB hard limit
    with running_server(
        tmp_path, max_outbound=MiB, outbound_soft=MiB // 2, **UNTHROTTLED_CHAT
    ) as srv:
        writer = await AsyncClient.connect(srv.address)
        try:
            await writer.join("past", "writer")
            window: list[asyncio.Future[Reply]] = []
            for _ in range(messages):
                window.append(writer.request("chat.say", b"h" * TEXT, room="past"))
                if len(window) >= 8:
                    await window.pop(0)
            for future in window:
                await future
            for fields, reply in (
                ({"op": "chat.join", "nick": "late", "history": 1000}, "chat.joined"),
                ({"op": "chat.join", "nick": "late", "since": 0}, "chat.joined"),
                ({"op": "chat.history", "limit": 1000}, "chat.history"),  # scroll-back too
            ):
                peer = RawPeer(srv.port)
                peer.request({"id": 1, "room": "past", **fields})
                seqs = []
                while True:
                    frame = peer.frame()
                    if frame.header["op"] != "chat.msg":
                        break
                    assert frame.header["history"] is True and len(frame.body) == TEXT
                    seqs.append(frame.header["seq"])
                assert frame.header["op"] == reply, frame.header
                assert seqs == list(range(1, messages + 1))
                peer.close()
        finally:
            await writer.close()
