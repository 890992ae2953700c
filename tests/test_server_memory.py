"""One memory budget for the whole server: hostile connections cannot pin more than it."""

from __future__ import annotations

import contextlib
import socket
from pathlib import Path

import pytest

from sockhub import AsyncClient
from sockhub.client.chat import ChatMessage
from sockhub.protocol.errors import LimitBusy
from sockhub.protocol.frames import encode_frame, encode_header
from sockhub.server.budget import Budget
from sockhub.services.files.upload import spool_reserve

from .conftest import UNTHROTTLED_CHAT, running_server
from .files_support import RawUpload, connect, files_server
from .test_chat_fanout import cut_off

MiB = 1024 * 1024
CLIENTS = 200
BUDGET = 16 * MiB


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def test_half_sent_bodies_stay_within_the_body_budget(tmp_path: Path) -> None:
    """200 connections each send a 1 MiB echo body but its last byte: the server holds
    about the budget, not 200 MiB, and gives it back when they leave."""
    with running_server(tmp_path, memory_bodies=BUDGET, max_connections_per_ip=CLIENTS + 8) as srv:
        server = srv.server
        assert server is not None
        frame = bytes(encode_header({"op": "echo", "id": 1}, MiB)) + bytes(MiB - 1)
        base = _rss()
        socks = []
        for _ in range(CLIENTS):
            sock = socket.create_connection(("127.0.0.1", srv.port))
            sock.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                sock.send(frame)
            socks.append(sock)
        srv.wait_until(lambda: server.bodies.used // MiB + server.bodies.waiting == CLIENTS)
        held = _rss() - base
        assert server.bodies.used <= BUDGET
        assert held < CLIENTS * MiB // 2, f"{held / MiB:.0f} MiB held"
        for sock in socks:
            sock.close()
        srv.wait_until(lambda: not server.connections)
        assert server.bodies.used == 0 and server.bodies.waiting == 0
        srv.wait_until(lambda: _rss() - base < held)  # freed pages go back to the system


def _silent_member(port: int, nick: str) -> socket.socket:
    """Joins the room ``crowd`` and then never reads a byte."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.sendall(encode_frame({"op": "chat.join", "id": 1, "room": "crowd", "nick": nick}))
    return sock


async def test_silent_members_cannot_pin_more_than_the_outbound_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """8 members that never read, sent 12.5 MiB each (more than the kernel's buffers
    absorb): together they hold about the outbound budget, not 8 backlogs; those over
    their share are cut, a member that reads gets everything."""
    peak = 0
    charge = Budget.charge

    def watched(self: Budget, before: int, after: int) -> None:
        nonlocal peak
        charge(self, before, after)
        if self.name == "outbound":
            peak = max(peak, self.used)

    monkeypatch.setattr(Budget, "charge", watched)
    text = b"z" * 16 * 1024
    with running_server(tmp_path, memory_outbound=4 * MiB, **UNTHROTTLED_CHAT) as srv:
        server = srv.server
        assert server is not None
        silent = [_silent_member(srv.port, f"silent{n}") for n in range(8)]
        reader = await AsyncClient.connect(srv.address)
        sender = await AsyncClient.connect(srv.address)
        try:
            await reader.join("crowd", "reader")
            await sender.join("crowd", "sender")
            sent = refused = 0
            while sent < 800:
                try:
                    await sender.request("chat.say", text, room="crowd")
                    sent += 1
                except LimitBusy:
                    refused += 1
                    srv.wait_until(lambda: not server.outbound.spent)
                got = 0
                while got < 1:
                    item = await reader.next_chat(30)
                    got += isinstance(item, ChatMessage)
            assert all(cut_off(sock) for sock in silent)
            assert peak < 4 * 4 * MiB, f"{peak / MiB:.1f} MiB queued at the peak"
            assert await reader.who("crowd") == ["reader", "sender"]
        finally:
            for sock in silent:
                sock.close()
            await reader.close()
            await sender.close()


def test_uploads_reserve_the_spool_budget(tmp_path: Path) -> None:
    """Uploads draw their spool's memory from one server-wide budget: one that does not
    fit is told limit.busy, and the budget comes back when an upload ends."""
    with files_server(tmp_path / "data", memory_spools=40 * MiB) as (srv, key):
        server = srv.server
        assert server is not None
        with connect(srv, key) as first, connect(srv, key) as second:
            running = RawUpload(first, "big1", 32 * MiB)
            running.ready()
            assert server.spools.used == spool_reserve(32 * MiB, server.limits.file_spool_high)
            big = tmp_path / "big"
            big.write_bytes(bytes(32 * MiB))
            with pytest.raises(LimitBusy, match="too many uploads"):
                second.put(big, "big2")
            running.drop()
        srv.wait_until(lambda: server.spools.used == 0)
        small = tmp_path / "small"
        small.write_bytes(b"fits now")
        with connect(srv, key) as third:
            assert third.put(small, "small").size == 8
